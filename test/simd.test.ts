import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocPages, decodeXbzrle, encodeXbzrle, freePages, isZeroPage, PageCache, XbzrleError } from '../lib/index.js';
import { encodeRange, encodeSimd, encodeStaged } from '../lib/codec/encode.js';
import { checkDelta, decodeSimd, STAGED_DECODE_MIN } from '../lib/codec/decode.js';
import { refDecode } from './helpers/reference-codec.js';
import { getEngine, kernelAddress, resetEngineForTests } from '../lib/codec/wasm/engine.js';
import { PageKernel } from '../lib/codec/kernel.js';
import { isZeroRange } from '../lib/codec/zero.js';
import { atOffset, randomBytes, rng, tile } from './helpers/bytes.js';

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

  /**
   * Old/new pages with runs of changes of every length, at any position. Past `distinct`
   * bytes the generated base repeats (fast-check draws every byte: a 128 KiB array costs
   * ~0.1 s, which made the 64/128 KiB staging runs take most of this file's time).
   */
  const pair = (size: number, distinct = size) =>
    fc
      .tuple(
        fc.uint8Array({ minLength: Math.min(size, distinct), maxLength: Math.min(size, distinct) }).map((b) => tile(b, size)),
        fc.array(fc.tuple(fc.nat(size - 1), fc.integer({ min: 1, max: 200 })), { maxLength: 60 }),
        fc.constantFrom('random', 'zero-old', 'same'),
      )
      .map(([base, edits, kind]) => {
        const prev = kind === 'zero-old' ? new Uint8Array(size) : base;
        const cur = kind === 'zero-old' ? base.slice() : prev.slice();
        if (kind !== 'zero-old') for (const [at, len] of edits) for (let i = at; i < Math.min(size, at + len); i++) cur[i] = cur[i]! ^ (1 + (i % 255));
        return [prev, cur] as const;
      });

  /** The TypeScript encoder's result for `dlen` (-2 where QEMU aborts) and its delta. */
  const reference = (prev: Uint8Array, cur: Uint8Array, dlen: number): { expected: number; want: Uint8Array } => {
    const want = new Uint8Array(dlen);
    try {
      return { expected: encodeRange(prev, 0, cur, 0, cur.length, want, 0, dlen), want };
    } catch {
      return { expected: -2, want };
    }
  };

  it.skipIf(engine === null)('encodes byte-identically to the TypeScript path, for any dlen and operands in or out of its memory', () => {
    const sizes = fc.constantFrom(64, 100, 1024, 4096, 8192, 16384);
    fc.assert(
      fc.property(
        sizes.chain((s) => fc.tuple(pair(s), fc.integer({ min: 0, max: 2 * s + 16 }), fc.boolean(), fc.boolean(), fc.boolean(), fc.nat(3))),
        ([[prev, cur], dlen, inPrev, inCur, inOut, shift]) => {
          const { expected, want } = reference(prev, cur, dlen);
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

  it.skipIf(engine === null)('encodes ordinary buffers in the staging area byte-identically, never writing past out.length', () => {
    const sizes = fc.constantFrom(64, 100, 4096, 65536, 131072);
    const kinds = fc.constantFrom('plain', 'shared', 'kernel-view');
    fc.assert(
      fc.property(
        sizes.chain((s) => fc.tuple(pair(s, 4096), fc.integer({ min: 0, max: 2 * s + 16 }), kinds, kinds, fc.nat(3))),
        ([[prev, cur], dlen, kindPrev, kindCur, shift]) => {
          const { expected, want } = reference(prev, cur, dlen);
          // Ordinary Uint8Arrays of three kinds: over an ArrayBuffer, over a SharedArrayBuffer,
          // and a plain view of the kernel's own memory (not one it handed out).
          const place = (data: Uint8Array, kind: string): Uint8Array => {
            if (kind === 'plain') return atOffset(data, shift);
            if (kind === 'shared') {
              const v = new Uint8Array(new SharedArrayBuffer(data.length + shift), shift, data.length);
              v.set(data);
              return v;
            }
            const pages = allocPages(Math.ceil((data.length + shift) / 4096) + 1);
            const v = new Uint8Array(pages.buffer, pages.byteOffset + shift, data.length);
            v.set(data);
            return v;
          };
          const backing = new Uint8Array(dlen + shift + 8).fill(0xa5);
          const out = backing.subarray(shift, shift + dlen);
          const got = encodeStaged(engine!, place(prev, kindPrev), place(cur, kindCur), out);
          expect(got).toBe(expected);
          if (expected > 0) expect(Buffer.from(out.subarray(0, expected)).equals(Buffer.from(want.subarray(0, expected)))).toBe(true);
          expect(backing.subarray(0, shift).every((b) => b === 0xa5)).toBe(true);
          expect(backing.subarray(shift + dlen).every((b) => b === 0xa5)).toBe(true);
        },
      ),
      { numRuns: 300, seed: 20261123 },
    );
  });

  it.skipIf(engine === null)('decodes (and rejects) exactly like the QEMU decoder, writing nothing on rejection', () => {
    const page = allocPages(2);
    const view = page.subarray(4096 - 64, 4096 - 64 + 4096); // not page aligned, crossing a page
    const anyDelta = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 60 }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, i, v]) => {
        const c = b.slice();
        c[i % c.length] = v;
        return c;
      }),
      // Valid deltas from the encoder, then corrupted in one byte.
      fc.tuple(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.nat(4095), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([cur, cut, i, v]) => {
        const out = new Uint8Array(4096);
        const prev = cur.slice();
        prev.fill(0, cut, Math.min(4096, cut + 50));
        const n = encodeRange(prev, 0, cur, 0, 4096, out, 0, 4096);
        const d = out.slice(0, Math.max(0, n));
        if (d.length > 0 && i % 3 === 0) d[i % d.length] = v;
        return d;
      }),
    );
    fc.assert(
      fc.property(anyDelta, fc.constantFrom(16, 100, 4096), (delta, dlen) => {
        const target = view.subarray(0, dlen);
        target.fill(0x5c);
        const ref = new Uint8Array(dlen).fill(0x5c);
        const want = refDecode(delta, ref);
        let got: number;
        try {
          got = decodeSimd(engine!, delta, 0, delta.length, target.byteOffset, dlen, 0);
        } catch (err) {
          expect((err as XbzrleError).code).toBe('ERR_XBZRLE_CORRUPT');
          got = -1;
          expect(target.every((b) => b === 0x5c)).toBe(true);
          // Same failing position as the TypeScript decoder.
          const ts = checkDelta(delta, 0, delta.length, dlen);
          expect((err as XbzrleError).offset).toBe(-1 - ts);
        }
        expect(got).toBe(want);
        if (want >= 0) expect(Buffer.from(target).equals(Buffer.from(ref))).toBe(true);
      }),
      { numRuns: 3000, seed: 11 },
    );
    freePages(page);
  });

  it.skipIf(engine === null)('decodes long deltas into ordinary pages through the staging area exactly like the QEMU decoder, touching nothing else', () => {
    // Dense deltas (at least STAGED_DECODE_MIN bytes) from the encoder, some corrupted in one
    // byte, and long random bytes; pages in ordinary buffers at any offset and in a SharedArrayBuffer.
    const denseDelta = fc
      .tuple(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.integer({ min: 3, max: 40 }), fc.nat(), fc.integer({ min: 0, max: 255 }))
      .map(([cur, step, i, v]) => {
        const prev = cur.slice();
        for (let k = 0; k < 4096; k += step) prev[k] = prev[k]! ^ 0xff;
        const out = new Uint8Array(4096);
        const n = encodeRange(prev, 0, cur, 0, 4096, out, 0, 4096);
        const d = out.slice(0, Math.max(0, n));
        if (d.length > 0 && i % 3 === 0) d[i % d.length] = v;
        return { prev, d };
      });
    const randomDelta = fc.uint8Array({ minLength: STAGED_DECODE_MIN, maxLength: 3000 }).map((d) => ({ prev: new Uint8Array(4096).fill(0x5c), d }));
    fc.assert(
      fc.property(fc.oneof(denseDelta, randomDelta), fc.nat(15), fc.boolean(), ({ prev, d }, shift, shared) => {
        fc.pre(d.length >= STAGED_DECODE_MIN);
        const backing = new Uint8Array(shared ? new SharedArrayBuffer(4096 + 48) : new ArrayBuffer(4096 + 48)).fill(0xee);
        const target = backing.subarray(16 + shift, 16 + shift + 4096);
        target.set(prev);
        const ref = prev.slice();
        const want = refDecode(d, ref);
        let got: number;
        try {
          got = decodeXbzrle(d, target);
        } catch (err) {
          expect((err as XbzrleError).code).toBe('ERR_XBZRLE_CORRUPT');
          expect((err as XbzrleError).offset).toBe(-1 - checkDelta(d, 0, d.length, 4096));
          got = -1;
        }
        expect(got).toBe(want);
        // Accepted: the new page; rejected: the page as it was. Never a byte outside it.
        expect(Buffer.from(target).equals(Buffer.from(want >= 0 ? ref : prev))).toBe(true);
        expect(backing.subarray(0, 16 + shift).every((b) => b === 0xee)).toBe(true);
        expect(backing.subarray(16 + shift + 4096).every((b) => b === 0xee)).toBe(true);
      }),
      { numRuns: 400, seed: 20261123 },
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

  it.skipIf(engine === null)('finds zero pages in ordinary buffers (tested in the staging area) exactly like the TypeScript scan', () => {
    const rand = rng(4);
    for (let t = 0; t < 600; t++) {
      // Lengths around the staging threshold and past the staging area's capacity.
      const len = t % 10 === 0 ? 300_000 + Math.floor(rand() * 100_000) : 1 + Math.floor(rand() * 9000);
      const shift = t % 7;
      const backing = new Uint8Array(len + 16);
      const view = backing.subarray(shift, shift + len);
      const kind = t % 4;
      if (kind === 1) view[Math.floor(rand() * len)] = 1 + Math.floor(rand() * 255); // anywhere
      if (kind === 2) view[len - 1] = 1; // the very last byte
      if (kind === 3) backing[shift + len] = 1; // just past the view: still a zero page
      expect(isZeroPage(view)).toBe(isZeroRange(view, 0, len));
      expect(isZeroPage(view)).toBe(kind === 0 || kind === 3);
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
      expect(engine.addressOf(a)).toBeGreaterThanOrEqual(0);
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

  it.skipIf(engine === null)('a buffer given back twice is refused, even after its memory went to a new buffer, which stays allocated', () => {
    const a = allocPages(1);
    freePages(a);
    expect(() => freePages(a)).toThrow(TypeError);
    const b = allocPages(1); // first fit: a's memory again
    expect(engine!.addressOf(b)).toBe(engine!.addressOf(a));
    b.fill(0x11);
    expect(() => freePages(a)).toThrow(TypeError); // stale: must not free b
    // Nor another view of b's bytes.
    const alias = new Uint8Array(b.buffer, b.byteOffset, b.length);
    expect(() => freePages(alias)).toThrow(TypeError);
    const d = allocPages(1);
    expect(engine!.addressOf(d)).not.toBe(engine!.addressOf(b));
    d.fill(0x22);
    expect(b.every((v) => v === 0x11)).toBe(true);
    freePages(d);
    freePages(b);
  });

  it('copies made with slice/map/filter are ordinary arrays, not kernel memory', () => {
    const pages = allocPages(1);
    pages.fill(7, 0, 64);
    const copies = [pages.slice(0, 64), pages.map((b) => b + 1), pages.filter((_, i) => i < 64)];
    for (const copy of copies) {
      expect(Object.getPrototypeOf(copy)).toBe(Uint8Array.prototype);
      if (engine !== null) expect(engine.addressOf(copy)).toBe(-1);
    }
    // Encoding from a copy reads the copy, not kernel memory at its offset 0.
    const prev = new Uint8Array(64);
    const out = new Uint8Array(80);
    expect(encodeXbzrle(prev, copies[0]!, out)).toBe(66);
    expect(out[0]).toBe(0);
    expect(out[1]).toBe(64);
    expect(out[2]).toBe(7);
    freePages(pages);
  });

  it.skipIf(engine === null)('arrays made through a kernel view\'s constructor over other memory are foreign: read and written where they are', () => {
    // User code can reach the view class (view.constructor) and make instances over any memory;
    // they must never be taken for kernel memory at their byteOffset (address 0 here).
    const pages = allocPages(1);
    const Ctor = pages.constructor as new (arg: number | ArrayBuffer, off?: number, len?: number) => Uint8Array;
    const prev = new Ctor(4096);
    const cur = new Ctor(new ArrayBuffer(4096 + 16), 16, 4096);
    const out = new Ctor(4096);
    cur.fill(9, 0, 8);
    expect(engine!.addressOf(cur)).toBe(-1);
    expect(isZeroPage(prev)).toBe(true);
    expect(isZeroPage(cur)).toBe(false);
    expect(encodeXbzrle(prev, cur, out)).toBe(10);
    expect(Array.from(out.subarray(0, 10))).toEqual([0, 8, 9, 9, 9, 9, 9, 9, 9, 9]);
    // Decoding (a delta long enough for the kernel's staged decoder) writes into the array itself.
    const delta = Uint8Array.from([0, 1, 7, ...Array.from({ length: 200 }, () => [1, 1, 5]).flat()]);
    expect(delta.length).toBeGreaterThanOrEqual(STAGED_DECODE_MIN);
    expect(decodeXbzrle(delta, prev)).toBe(401);
    expect(Array.from(prev.subarray(0, 6))).toEqual([7, 0, 5, 0, 5, 0]);
    freePages(out); // not kernel memory: nothing to free
    // Views over the kernel memory keep their address through subarray.
    const inner = pages.subarray(100).subarray(28, 60);
    expect(engine!.addressOf(inner)).toBe(inner.byteOffset);
    expect(engine!.addressOf(inner)).toBe(engine!.addressOf(pages) + 128);
    // Made through the constructor over the kernel's memory, with an offset ToIndex converts:
    // its address is the number, not the argument.
    const two = allocPages(2);
    const odd = new Ctor(two.buffer as ArrayBuffer, String(two.byteOffset + 4096) as unknown as number, 4096);
    expect(engine!.addressOf(odd)).toBe(two.byteOffset + 4096);
    two[4096 + 9] = 1;
    expect(isZeroPage(odd)).toBe(false);
    const cache = new PageCache({ size: 4 * 4096 });
    cache.insert(0, odd);
    expect(cache.peek(0)![9]).toBe(1);
    cache.dispose();
    freePages(two);
    freePages(pages);
  });

  it.skipIf(engine === null)('arrays that copy a kernel view\'s properties (Object.assign, spread) are foreign: the address does not travel', () => {
    // Kernel views carry their address in a property; copying properties must not
    // make another array pass for kernel memory at that address.
    const pages = allocPages(2);
    const prev = pages.subarray(0, 4096);
    prev.fill(3);
    const copy = Object.assign(new Uint8Array(4096), prev); // copies the bytes (indices), nothing else
    copy[5] = 77;
    expect(engine!.addressOf(copy)).toBe(-1);
    const cur = pages.subarray(4096);
    cur.fill(3);
    const out = allocPages(1);
    // Read from the copy: one changed byte at 5. Taken for kernel memory at prev's
    // address, it would read prev (equal to cur) and give 0.
    expect(encodeXbzrle(copy, cur, out)).toBe(3);
    expect(Array.from(out.subarray(0, 3))).toEqual([5, 1, 3]);
    const spread = { ...prev };
    expect(Object.getOwnPropertySymbols(spread)).toEqual([]);
    // The kernel's own views do carry one, and keep it through subarray.
    expect(kernelAddress(cur)).toBe(kernelAddress(pages) + 4096);
    expect(kernelAddress(cur.subarray(8))).toBe(kernelAddress(pages) + 4104);
    freePages(out);
    freePages(pages);
  });

  it.skipIf(engine === null)('a delta that overlaps the kernel-memory page it is applied to decodes as if copied first, writing nothing outside the page', () => {
    const rand = rng(92);
    for (let t = 0; t < 40; t++) {
      const pages = allocPages(3);
      pages.fill(0xee);
      const page = pages.subarray(4096, 8192);
      for (let i = 0; i < 4096; i++) page[i] = rand() & 0xff;
      // A valid delta of dense runs, placed inside the page (or straddling its end).
      const prev = page.slice();
      const cur = prev.slice();
      for (let i = Math.floor(rand() * 8); i < 4096; i += 3 + Math.floor(rand() * 9)) cur[i] = cur[i]! ^ 0xa5;
      const out = new Uint8Array(4096);
      const n = encodeRange(prev, 0, cur, 0, 4096, out, 0, 4096);
      expect(n).toBeGreaterThanOrEqual(128);
      const at = 4096 + Math.floor(rand() * (4096 + 2048 - n));
      pages.set(out.subarray(0, n), at);
      const expectedPage = page.slice();
      const want = refDecode(out.subarray(0, n), expectedPage);
      const before = pages.slice();
      expect(decodeXbzrle(pages.subarray(at, at + n), page)).toBe(want);
      expect(Buffer.from(page).equals(Buffer.from(expectedPage))).toBe(true);
      // Outside the page: only the delta's own bytes past the page's end are as they were.
      expect(Buffer.from(pages.subarray(0, 4096)).equals(Buffer.from(before.subarray(0, 4096)))).toBe(true);
      expect(Buffer.from(pages.subarray(8192)).equals(Buffer.from(before.subarray(8192)))).toBe(true);
      freePages(pages);
    }
  });

  it.skipIf(engine === null)('the encoder writes nothing in the output buffer after the delta it returns', () => {
    const prev = allocPages(1);
    const cur = allocPages(1);
    const out = allocPages(2);
    for (let len = 1; len <= 70; len++) {
      cur.set(prev);
      for (let i = 0; i < len; i++) cur[100 + i] = prev[100 + i]! ^ 0x5a;
      out.fill(0xaa);
      const n = encodeXbzrle(prev, cur, out);
      expect(n).toBe(1 + 1 + len); // skip 100, length, the bytes
      expect(out.subarray(n).every((b) => b === 0xaa)).toBe(true);
    }
    for (const p of [prev, cur, out]) freePages(p);
  });

  it.skipIf(engine === null)('a literal that ends the page never writes a byte past it', () => {
    const pages = allocPages(2);
    for (let len = 1; len <= 70; len++) {
      const page = pages.subarray(0, 4096);
      page.fill(0);
      pages.fill(0xaa, 4096, 4096 + 64);
      // zero run up to the literal, then `len` literal bytes ending at 4096
      const delta: number[] = [];
      let skip = 4096 - len;
      for (;;) {
        const b = skip & 0x7f;
        skip >>>= 7;
        if (skip === 0) {
          delta.push(b);
          break;
        }
        delta.push(b | 0x80);
      }
      delta.push(len, ...new Array<number>(len).fill(0x55));
      const bytes = Uint8Array.from(delta);
      expect(decodeSimd(engine!, bytes, 0, bytes.length, page.byteOffset, 4096, 0)).toBe(4096);
      expect(page.subarray(4096 - len).every((b) => b === 0x55)).toBe(true);
      expect(page.subarray(0, 4096 - len).every((b) => b === 0)).toBe(true);
      expect(pages.subarray(4096, 4096 + 64).every((b) => b === 0xaa)).toBe(true);
    }
    freePages(pages);
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
    expect(engine!.allocated).toBe(before);
  });
});

describe('a new engine (resetEngineForTests)', () => {
  // Last in this file: after it, the engine captured at the top is stale.
  it.skipIf(engine === null)('is the one encodeXbzrle uses afterwards, for staged and in-place operands', () => {
    const prev = randomBytes(4096, rng(91));
    const cur = prev.slice();
    cur.fill(0x33, 100, 107);
    const out = new Uint8Array(4096);
    expect(encodeXbzrle(prev, cur, out)).toBe(9); // stages on the current engine
    allocPages(64).fill(0x33); // memory of the old engine, at the addresses the new one hands out
    resetEngineForTests();
    const fresh = getEngine()!;
    expect(fresh).not.toBe(engine);
    const kc = allocPages(1);
    kc.set(cur);
    const want = new Uint8Array(4096);
    const n = encodeRange(prev, 0, cur, 0, 4096, want, 0, 4096);
    expect(encodeXbzrle(prev, kc, out)).toBe(n);
    expect(Array.from(out.subarray(0, n))).toEqual(Array.from(want.subarray(0, n)));
    expect(encodeXbzrle(prev, cur, out)).toBe(n);
    expect(Array.from(out.subarray(0, n))).toEqual(Array.from(want.subarray(0, n)));
  });
});
