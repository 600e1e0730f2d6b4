import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage } from '../lib/delta/index.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-sparse-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string): string => join(dir, n);

describe('sparse output', () => {
  it('zero pages of NEW stay holes', async () => {
    const ps = 4096;
    const oldImg = new Uint8Array(1024 * ps).fill(0x33);
    const newImg = new Uint8Array(1024 * ps);
    newImg.set(oldImg.subarray(0, 16 * ps)); // 64 KiB of data, the rest zero
    newImg[500 * ps + 7] = 1;
    writeFileSync(p('old'), oldImg);
    writeFileSync(p('new'), newImg);
    const st = await diffImages(p('old'), p('new'), p('d'));
    expect(st.zero).toBe(1024 - 17);
    await patchImage(p('old'), p('d'), p('out'));
    expect(Buffer.compare(readFileSync(p('out')), newImg)).toBe(0);
    const s = statSync(p('out'));
    expect(s.size).toBe(newImg.length);
    // 17 pages of data (plus file-system slack), not 4 MiB
    expect(s.blocks * 512).toBeLessThan(1 << 20);
  });
});
