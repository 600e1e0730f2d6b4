/**
 * diff's first pass in WebAssembly (lib/delta/scan.ts, lib/delta/wasm/scan.wat):
 * XXH64 and the page scan against xxhash-wasm and byte comparisons, and the
 * encoder's fast path (pages in the kernel's memory) against its page-by-page
 * path (ordinary buffers): the same delta, byte for byte.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { allocPages, freePages } from '../lib/codec/pages.js';
import { diffImages, loadHasher, patchImage, type DeltaEncoderOptions, type DeltaStats } from '../lib/delta/index.js';
import { PageIndex } from '../lib/delta/hash.js';
import { getScanner, SCAN_CHANGED, SCAN_NEW_ZERO, SCAN_OLD_ZERO, scanOutBytes, setScannerEnabled } from '../lib/delta/scan.js';
import { applyInMemory, concat, fillPage, makePair, memoryEncoder, rng } from './delta-images.js';

const wasmOff = process.env['XBZRLE_WASM'] === '0';

describe.skipIf(wasmOff)('the WebAssembly page scan', () => {
  it('scan-wasm.ts is what scan.wat assembles to', () => {
    const r = spawnSync(process.execPath, ['lib/delta/wasm/build-scan.mjs', '--check'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('XXH64 of every length from 32 to 16 KiB (multiples of 32) is xxhash-wasm’s', async () => {
    const sc = getScanner();
    expect(sc).not.toBeNull();
    const hasher = await loadHasher();
    const buf = allocPages(5);
    try {
      const r = rng(11);
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256);
      const at = sc!.engine.addressOf(buf);
      for (let len = 32; len <= 16384; len += 32) {
        // at an odd offset too: loads need no alignment
        for (const off of [0, 7]) expect(sc!.xxh64(at + off, len), `length ${len} at +${off}`).toBe(hasher.h64(buf.subarray(off, off + len)));
      }
      expect(sc!.xxh64(at, 4096)).not.toBe(sc!.xxh64(at + 1, 4096));
    } finally {
      freePages(buf);
    }
  });

  it('scan: hashes, flags and the changed count of every kind of page pair, at every page size', async () => {
    const sc = getScanner()!;
    const hasher = await loadHasher();
    for (const ps of [1024, 4096, 16384]) {
      const pages = 40;
      const r = rng(ps);
      const oldImg = new Uint8Array(pages * ps);
      for (let p = 0; p < pages; p++) fillPage(oldImg, p, ps, p % 4, r);
      const newImg = oldImg.slice();
      const changedPages = new Set<number>();
      for (let p = 1; p < pages; p += 3) {
        if (p % 9 === 1) fillPage(newImg, p, ps, 0, r); // becomes zero (or stays zero: then unchanged)
        else if (p % 9 === 4) newImg[p * ps + ps - 1] = newImg[p * ps + ps - 1]! ^ 1; // last byte only
        else newImg[p * ps] = newImg[p * ps]! ^ 0x80; // first byte only
      }
      for (let p = 0; p < pages; p++) if (Buffer.compare(oldImg.subarray(p * ps, p * ps + ps), newImg.subarray(p * ps, p * ps + ps)) !== 0) changedPages.add(p);
      const ob = allocPages(pages, ps);
      const nb = allocPages(pages, ps);
      const out = allocPages(Math.ceil(scanOutBytes(pages) / ps), ps);
      try {
        ob.set(oldImg);
        nb.set(newImg);
        const e = sc.engine;
        const base = e.addressOf(out);
        const zeroHash = hasher.h64(new Uint8Array(ps));
        const n = sc.scan(e.addressOf(ob), e.addressOf(nb), pages, ps, base, base + 8 * pages, base + 16 * pages, zeroHash);
        expect(n).toBe(changedPages.size);
        expect(n).toBeGreaterThan(5);
        const dv = new DataView(out.buffer, out.byteOffset);
        for (let p = 0; p < pages; p++) {
          const o = oldImg.subarray(p * ps, p * ps + ps);
          const w = newImg.subarray(p * ps, p * ps + ps);
          const oz = o.every((b) => b === 0);
          const nz = w.every((b) => b === 0);
          const ch = changedPages.has(p);
          expect(dv.getBigUint64(8 * p, true), `OLD hash of page ${p}`).toBe(hasher.h64(o));
          expect(dv.getBigUint64(8 * (pages + p), true), `NEW hash of page ${p}`).toBe(hasher.h64(w));
          const flags = (ch ? SCAN_CHANGED : 0) | (oz ? SCAN_OLD_ZERO : 0) | (ch && nz ? SCAN_NEW_ZERO : 0);
          expect(out[16 * pages + p], `flags of page ${p} (page size ${ps})`).toBe(flags);
        }
        // equal() agrees with the flags
        for (let p = 0; p < pages; p++) expect(sc.equal(e.addressOf(ob) + p * ps, e.addressOf(nb) + p * ps, ps)).toBe(changedPages.has(p) ? 0 : 1);
      } finally {
        freePages(ob);
        freePages(nb);
        freePages(out);
      }
    }
  });
});

/**
 * diff's two passes in memory: `scan` in steps of `step` bytes, then
 * `encodeChanged` on every changed page, with OLD and NEW in the kernel's
 * memory (the WebAssembly scan, hashes and comparisons in place) or in
 * ordinary buffers (page by page, xxhash-wasm and the XBZRLE kernel).
 */
async function twoPasses(oldImg: Uint8Array, newImg: Uint8Array, inKernel: boolean, opts: Partial<DeltaEncoderOptions> = {}, step = 64 * 1024): Promise<{ delta: Uint8Array; stats: DeltaStats; scans: number; known: number }> {
  const ps = opts.pageSize ?? 4096;
  // Counts the WebAssembly scans (the encoder calls the shared scanner's method).
  const sc = getScanner()!;
  const scan = sc.scan;
  let scans = 0;
  let known = 0;
  sc.scan = (...args) => {
    scans++;
    return scan(...args);
  };
  const buf = (bytes: number): Uint8Array => (inKernel ? allocPages(bytes / ps, ps) : new Uint8Array(bytes));
  const bufs = [buf(step), buf(step), buf(2 * ps)];
  const [ob, nb, pair] = bufs as [Uint8Array, Uint8Array, Uint8Array];
  const { enc, chunks, oldPadded, oldEnd } = await memoryEncoder(oldImg, newImg, opts);
  try {
    for (let p = 0; p < newImg.length; p += step) {
      const n = Math.min(step, newImg.length - p);
      ob.set(oldPadded.subarray(p, p + n));
      nb.set(newImg.subarray(p, p + n));
      enc.scan(ob.subarray(0, n), nb.subarray(0, n), p);
    }
    if (oldEnd > newImg.length) enc.indexOld(oldPadded.subarray(newImg.length, oldEnd), newImg.length);
    const garbage = rng(99);
    for (const page of enc.changedPages()) {
      if (!enc.needsPages(page)) {
        // The scan worked this record out: the encoder must not look at the buffers.
        known++;
        for (let i = 0; i < pair.length; i++) pair[i] = Math.floor(garbage() * 256);
        await enc.encodeChanged(page, pair.subarray(0, ps), 0, pair.subarray(ps, 2 * ps), 0);
        continue;
      }
      // OLD's page and NEW's side by side in one buffer: only the pair's own bytes count as in memory
      pair.set(oldPadded.subarray(page * ps, page * ps + ps), 0);
      pair.set(newImg.subarray(page * ps, page * ps + ps), ps);
      const olds = pair.subarray(0, ps);
      const news = pair.subarray(ps, 2 * ps);
      await enc.encodeChanged(page, olds, 0, news, 0);
    }
    const stats = enc.end();
    return { delta: concat(chunks), stats, scans, known };
  } finally {
    sc.scan = scan;
    enc.dispose();
    if (inKernel) for (const b of bufs) freePages(b);
  }
}

describe.skipIf(wasmOff)('the encoder with the WebAssembly scan', () => {
  /** A quarter of NEW's pages copied from elsewhere in OLD (every page position of a step is a source somewhere). */
  const moved = (): { oldImg: Uint8Array; newImg: Uint8Array } => {
    const { oldImg, newImg } = makePair(28, 600);
    const r = rng(29);
    for (let k = 0; k < 150; k++) {
      const from = Math.floor(r() * 600) * 4096;
      newImg.set(oldImg.subarray(from, from + 4096), Math.floor(r() * 600) * 4096);
    }
    return { oldImg, newImg };
  };
  const cases: [string, () => { oldImg: Uint8Array; newImg: Uint8Array }, Partial<DeltaEncoderOptions>][] = [
    ['same sizes', () => makePair(21, 600), {}],
    ['many moved pages', moved, {}],
    ['OLD longer than NEW (its tail hashed after the scan)', () => ({ oldImg: makePair(22, 700).oldImg, newImg: makePair(22, 700).newImg.slice(0, 500 * 4096) }), {}],
    ['OLD shorter, not a page multiple', () => ({ oldImg: makePair(23, 600).oldImg.slice(0, 400 * 4096 + 1234), newImg: makePair(23, 600).newImg }), {}],
    ['fewer index pages than OLD has (pages past the limit inserted as they come)', () => makePair(24, 600), { maxIndexPages: 200 }],
    ['page size 1024, stored frames', () => makePair(25, 1500, 1024), { pageSize: 1024, compress: false }],
    ['page size 16384', () => makePair(26, 120, 16384), { pageSize: 16384 }],
    ['no dedup', () => makePair(27, 600), { dedup: false }],
    ['room for the records of a few pages only (the others read back)', () => makePair(30, 600), { keepBytes: 40 }],
  ];
  for (const [name, make, opts] of cases) {
    it(`the same delta as page by page: ${name}`, async () => {
      const { oldImg, newImg } = make();
      const fast = await twoPasses(oldImg, newImg, true, opts);
      const slow = await twoPasses(oldImg, newImg, false, opts);
      expect(fast.scans).toBeGreaterThan(0);
      expect(slow.scans).toBe(0);
      // ZERO and small XBZRLE records come from the scan (within keepBytes), not from the buffers
      expect(fast.known).toBeGreaterThan(0);
      if (opts.keepBytes !== undefined) expect(fast.known).toBeLessThanOrEqual(opts.keepBytes);
      expect(slow.known).toBe(0);
      expect(fast.stats).toEqual(slow.stats);
      expect(Buffer.from(fast.delta).equals(Buffer.from(slow.delta))).toBe(true);
      if (opts.dedup !== false) expect(fast.stats.refOld + fast.stats.refNew).toBeGreaterThan(0);
      expect(fast.stats.zero).toBeGreaterThan(0);
      const { image } = await applyInMemory(oldImg, fast.delta);
      expect(Buffer.compare(image, newImg)).toBe(0);
    });
  }
});

describe.skipIf(wasmOff)('diff and patch of files with and without the WebAssembly scan', () => {
  afterEach(() => setScannerEnabled(true));

  it('the same delta, the same image, the same counters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xbzrle-delta-scan-'));
    try {
      const { oldImg, newImg } = makePair(31, 3000);
      const old = join(dir, 'old.img');
      const neu = join(dir, 'new.img');
      // OLD one page and a bit longer than NEW: its tail is hashed after the scan
      writeFileSync(old, Buffer.concat([oldImg, new Uint8Array(5000).fill(9)]));
      writeFileSync(neu, newImg);
      const runs: { delta: Buffer; image: Buffer; diff: DeltaStats; patch: DeltaStats }[] = [];
      for (const on of [true, false]) {
        setScannerEnabled(on);
        expect(getScanner() !== null).toBe(on);
        const d = join(dir, `${on}.d`);
        const out = join(dir, `${on}.img`);
        const diff = await diffImages(old, neu, d);
        const [patch] = await patchImage(old, d, out);
        runs.push({ delta: readFileSync(d), image: readFileSync(out), diff, patch: patch! });
      }
      const [a, b] = runs as [(typeof runs)[0], (typeof runs)[0]];
      expect(a.delta.equals(b.delta)).toBe(true);
      expect(a.diff).toEqual(b.diff);
      expect(a.patch).toEqual(b.patch);
      expect(a.image.equals(Buffer.from(newImg))).toBe(true);
      expect(b.image.equals(Buffer.from(newImg))).toBe(true);
      expect(a.diff.refOld).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PageIndex', () => {
  it('finds the same pages whatever room it was made with (it grows; also past its limit)', () => {
    const r = rng(41);
    const hashes: bigint[] = [];
    for (let i = 0; i < 3000; i++) {
      // some repeated hashes, some sharing only the low 32 bits
      const lo = i % 7 === 0 && i > 0 ? Number(hashes[i - 1]! & 0xffffffffn) : Math.floor(r() * 2 ** 32);
      hashes.push((BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(lo));
      if (i % 11 === 0 && i > 0) hashes[i] = hashes[i - 3]!;
    }
    for (const max of [3000, 1000]) {
      const full = new PageIndex(max);
      const small = new PageIndex(max, 10); // grows from 1024 slots
      const tight = new PageIndex(max, Math.min(max, 3000));
      for (let i = 0; i < hashes.length; i++) for (const x of [full, small, tight]) x.insert(hashes[i]!, i);
      expect(full.size).toBe(max === 3000 ? new Set(hashes.map((h) => h & 0xffffffffn)).size : 1000);
      for (const x of [small, tight]) expect(x.size).toBe(full.size);
      expect(small.bytes).toBeGreaterThan(8 * 1024); // it grew
      const probes = [...hashes, ...Array.from({ length: 500 }, () => BigInt(Math.floor(r() * 2 ** 32)))];
      for (const h of probes) {
        const want = full.find(h);
        expect(small.find(h)).toBe(want);
        expect(tight.find(h)).toBe(want);
      }
    }
    expect(new PageIndex(1 << 20, 100).bytes).toBeLessThan(new PageIndex(1 << 20).bytes / 100);
  });
});
