import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocPages, encodeXbzrle, freePages, isZeroPage, PageCache } from '../lib/index.js';
import { encodeRange, encodeSimd } from '../lib/codec/encode.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { PageKernel } from '../lib/codec/kernel.js';
import { isZeroRange } from '../lib/codec/zero.js';
import { atOffset, randomBytes, rng } from './helpers/bytes.js';

const engine = getEngine();
const wasmOff = process.env['XBZRLE_WASM'] === '0';

describe('the WebAssembly SIMD kernel', () => {
  it('is available on this runtime (so the SIMD path is really tested)', () => {
    if (wasmOff) expect(engine).toBeNull();
    else {
      expect(engine).not.toBeNull();
      expect(engine!.shared).toBe(true);
    }
  });

  /** Old/new pages with runs of changes of every length, at any position. */
  const pair = (size: number) =>
    fc
      .tuple(
        fc.uint8Array({ minLength: size, maxLength: size }),
        fc.array(fc.tuple(fc.nat(size - 1), fc.integer({ min: 1, max: 200 })), { maxLength: 60 }),
        fc.constantFrom('random', 'zero-old', 'same'),
      )
      .map(([base, edits, kind]) => {
        const prev = kind === 'zero-old' ? new Uint8Array(size) : base;
        const cur = kind === 'zero-old' ? base.slice() : prev.slice();
        if (kind !== 'zero-old') for (const [at, len] of edits) for (let i = at; i < Math.min(size, at + len); i++) cur[i] = cur[i]! ^ (1 + (i % 255));
        return [prev, cur] as const;
      });

  it.skipIf(engine === null)('encodes byte-identically to the TypeScript path, for any dlen and operands in or out of its memory', () => {
    const sizes = fc.constantFrom(64, 100, 1024, 4096, 8192, 16384);
    fc.assert(
      fc.property(
        sizes.chain((s) => fc.tuple(pair(s), fc.integer({ min: 0, max: 2 * s + 16 }), fc.boolean(), fc.boolean(), fc.boolean(), fc.nat(3))),
        ([[prev, cur], dlen, inPrev, inCur, inOut, shift]) => {
          const want = new Uint8Array(dlen);
          let expected: number;
          try {
            expected = encodeRange(prev, 0, cur, 0, cur.length, want, 0, dlen);
          } catch {
            expected = -2;
          }
          const place = (data: Uint8Array, inside: boolean): Uint8Array => {
            if (!inside) return atOffset(data, shift);
            const pages = allocPages(Math.ceil((data.length + shift) / 4096) + 1);
            const view = pages.subarray(shift, shift + data.length);
            view.set(data);
            return view;
          };
          const p = place(prev, inPrev);
          const c = place(cur, inCur);
          const out = inOut ? allocPages(Math.ceil((dlen + shift) / 4096) + 1).subarray(shift, shift + dlen) : new Uint8Array(dlen);
          const got = encodeSimd(engine!, p, c, out);
          expect(got).toBe(expected);
          if (expected > 0) expect(Buffer.from(out.subarray(0, expected)).equals(Buffer.from(want.subarray(0, expected)))).toBe(true);
        },
      ),
      { numRuns: 600, seed: 20261122 },
    );
  });

  it.skipIf(engine === null)('finds zero pages exactly like the TypeScript scan', () => {
    const rand = rng(3);
    for (let t = 0; t < 500; t++) {
      const len = 1 + Math.floor(rand() * 5000);
      const pages = allocPages(Math.ceil(len / 4096) + 1);
      const view = pages.subarray(t % 7, (t % 7) + len);
      if (t % 2) view[Math.floor(rand() * len)] = 1 + Math.floor(rand() * 255);
      expect(isZeroPage(view)).toBe(isZeroRange(view, 0, len));
      freePages(pages);
    }
  });

  it.skipIf(engine === null)('PageKernel gives the same deltas through staging as the TypeScript encoder', () => {
    const kernel = new PageKernel(4096, 4);
    const rand = rng(9);
    for (let t = 0; t < 200; t++) {
      const prev = randomBytes(4 * 4096, rand);
      const cur = prev.slice();
      for (let k = 0; k < t % 50; k++) cur[Math.floor(rand() * cur.length)] = Math.floor(rand() * 256);
      kernel.stage(cur, 0, 4);
      for (let i = 0; i < 4; i++) {
        const want = new Uint8Array(4096);
        const n = encodeRange(prev, i * 4096, cur, i * 4096, 4096, want, 0, 4096);
        expect(kernel.encode(prev, i * 4096, kernel.src, kernel.srcOff + i * 4096)).toBe(n);
        if (n > 0) expect(Buffer.from(kernel.delta.subarray(kernel.deltaOff, kernel.deltaOff + n)).equals(Buffer.from(want.subarray(0, n)))).toBe(true);
      }
    }
    kernel.dispose();
  });
});

describe('allocPages', () => {
  it('returns zeroed, page-aligned buffers that stay valid while the memory grows', () => {
    const a = allocPages(4);
    expect(a.length).toBe(4 * 4096);
    expect(a.every((v) => v === 0)).toBe(true);
    if (engine !== null) {
      expect(engine.owns(a)).toBe(true);
      expect(a.byteOffset % 4096).toBe(0);
    }
    a.fill(7);
    // Force the kernel's memory to grow well past its current size.
    const big = allocPages(8192); // 32 MiB
    big[big.length - 1] = 1;
    expect(a.length).toBe(4 * 4096);
    expect(a[100]).toBe(7);
    freePages(big);
    freePages(a);
    const b = allocPages(2, 16384);
    expect(b.length).toBe(32768);
    expect(b.every((v) => v === 0)).toBe(true);
    freePages(b);
  });

  it('refuses bad arguments and foreign views', () => {
    expect(() => allocPages(0)).toThrow(RangeError);
    expect(() => allocPages(1, 3000)).toThrow(RangeError);
    const a = allocPages(2);
    if (engine !== null) expect(() => freePages(a.subarray(4096))).toThrow(TypeError);
    freePages(a);
    freePages(new Uint8Array(10)); // a plain array: nothing to do
  });

  it('encodes in place between allocPages buffers, as the public encodeXbzrle', () => {
    const prev = allocPages(1);
    const cur = allocPages(1);
    const out = allocPages(1);
    cur[1001] = 1;
    cur[4095] = 2;
    expect(encodeXbzrle(prev, cur, out)).toBe(8);
    expect(Array.from(out.subarray(0, 8))).toEqual([0xe9, 0x07, 0x01, 0x01, 0x95, 0x18, 0x01, 0x02]);
    for (const p of [prev, cur, out]) freePages(p);
  });
});

describe('PageCache and the kernel memory', () => {
  it.skipIf(engine === null)('keeps its arena in the kernel memory, and gives it back on dispose() and resize()', () => {
    const before = engine!.allocated;
    const cache = new PageCache({ size: 1 << 20 });
    expect(cache.arenaPtr).toBeGreaterThanOrEqual(0);
    expect(engine!.allocated).toBeGreaterThanOrEqual(before + (1 << 20));
    cache.insert(4096, new Uint8Array(4096).fill(3));
    cache.resize(2 << 20);
    expect(cache.peek(4096)![0]).toBe(3);
    expect(engine!.allocated).toBeLessThan(before + (3 << 20));
    cache.dispose();
    expect(engine!.allocated).toBeLessThanOrEqual(before + 4096 + 64);
  });
});
