import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage, verifyDelta } from '../lib/delta/index.js';
import { makePair } from './delta-images.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-rt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('delta round trip', () => {
  it('diff then patch gives NEW back, with every record kind', async () => {
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
    const v = await verifyDelta(d);
    expect(v.refOld).toBe(st.refOld);
    const v2 = await verifyDelta(d, a);
    expect(v2.unchanged).toBe(st.unchanged);
  });
});
