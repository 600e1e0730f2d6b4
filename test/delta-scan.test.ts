/**
 * diff's first pass in WebAssembly (lib/delta/scan.ts, lib/delta/wasm/scan.wat):
 * XXH64 and the page scan against xxhash-wasm and byte comparisons.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { allocPages, freePages } from '../lib/codec/pages.js';
import { loadHasher } from '../lib/delta/index.js';
import { getScanner, SCAN_CHANGED, SCAN_NEW_ZERO, SCAN_OLD_ZERO, scanOutBytes } from '../lib/delta/scan.js';
import { fillPage, rng } from './delta-images.js';

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
