import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage, verifyDelta } from '../lib/delta/index.js';
import { applyInMemory, encodeInMemory, makePair } from './delta-images.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-rt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('delta round trip', () => {
  it('files: diff then patch gives NEW back, with every record kind', async () => {
    const { oldImg, newImg } = makePair(7, 600, 4096);
    const a = join(dir, 'a'), b = join(dir, 'b'), d = join(dir, 'd'), c = join(dir, 'c');
    writeFileSync(a, oldImg);
    writeFileSync(b, newImg);
    const st = await diffImages(a, b, d);
    expect(st.format).toBe('xbzrle');
    expect(st.refOld).toBeGreaterThan(0);
    expect(st.refNew).toBeGreaterThan(0);
    expect(st.zero).toBeGreaterThan(0);
    expect(st.xbzrle).toBeGreaterThan(0);
    expect(st.page).toBeGreaterThan(0);
    const [ps] = await patchImage(a, d, c);
    expect(Buffer.compare(readFileSync(c), newImg)).toBe(0);
    expect(ps!.newDigest).toBe(st.newDigest);
    expect(ps!.oldDigest).toBe(st.oldDigest);
    const v = await verifyDelta(d);
    expect(v).toMatchObject({ format: 'xbzrle', refOld: st.refOld, refNew: st.refNew, zero: st.zero, page: st.page, xbzrle: st.xbzrle, deltaBytes: st.deltaBytes });
    const v2 = await verifyDelta(d, a);
    expect(v2.unchanged).toBe(st.unchanged);
  });

  it('files of different sizes (both passes of diff: OLD longer, shorter, not a page multiple, empty)', async () => {
    for (const [oldLen, newPages] of [
      [70 * 4096, 64],
      [600 * 4096, 520],
      [20 * 4096 + 123, 64],
      [0, 5],
    ] as const) {
      const { oldImg: o0, newImg } = makePair(oldLen + newPages, Math.max(1, Math.ceil(oldLen / 4096)), 4096, newPages);
      const oldImg = o0.subarray(0, oldLen);
      const a = join(dir, 'sa'), b = join(dir, 'sb'), d = join(dir, 'sd'), c = join(dir, 'sc');
      writeFileSync(a, oldImg);
      writeFileSync(b, newImg);
      await diffImages(a, b, d, { force: true });
      await patchImage(a, d, c, { force: true });
      expect(Buffer.compare(readFileSync(c), newImg)).toBe(0);
    }
  });

  it('OLD and NEW of different sizes, OLD not a page multiple, no compression, no dedup, page size 8192', async () => {
    for (const [oldLen, newPages, ps, opts] of [
      [5 * 4096 + 100, 9, 4096, { compress: false }],
      [40 * 4096, 12, 4096, { dedup: false }],
      [0, 3, 4096, {}],
      [7 * 8192, 7, 8192, { pageSize: 8192, level: 9 }],
    ] as const) {
      const { oldImg: o0, newImg } = makePair(oldLen + newPages, Math.max(1, Math.ceil(oldLen / ps)), ps, newPages);
      const oldImg = o0.subarray(0, oldLen);
      const { delta, stats } = await encodeInMemory(oldImg, newImg, { ...opts, pageSize: ps });
      const { image } = await applyInMemory(oldImg, delta);
      expect(Buffer.compare(image, newImg)).toBe(0);
      expect(stats.oldSize).toBe(oldLen);
    }
  });

  it('property: any edits round-trip (in memory)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), async (seed, oldPages, newPages, compress) => {
        const { oldImg, newImg } = makePair(seed, oldPages, 4096, newPages);
        const { delta } = await encodeInMemory(oldImg, newImg, { compress, frameSize: 4096 }, 8192);
        const { image } = await applyInMemory(oldImg, delta, 'random');
        expect(Buffer.compare(image, newImg)).toBe(0);
      }),
      { numRuns: 40 },
    );
  });
});
