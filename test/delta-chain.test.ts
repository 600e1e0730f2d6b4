import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage } from '../lib/delta/index.js';
import { makePair } from './delta-images.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-chain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string): string => join(dir, n);

describe('chains', () => {
  it('base + three deltas in one call give the last image; a wrong order is refused', async () => {
    const imgs: Uint8Array[] = [];
    let cur = makePair(31, 80).oldImg;
    imgs.push(cur);
    for (let i = 1; i <= 3; i++) {
      const next = makePair(31 + i, 80, 4096, 80 + i * 3).newImg;
      // keep most of cur so the deltas are deltas
      next.set(cur.subarray(0, 40 * 4096));
      imgs.push(next);
      cur = next;
    }
    imgs.forEach((img, i) => writeFileSync(p(`s${i}`), img));
    for (let i = 1; i <= 3; i++) await diffImages(p(`s${i - 1}`), p(`s${i}`), p(`d${i}`));
    const stats = await patchImage(p('s0'), [p('d1'), p('d2'), p('d3')], p('out'));
    expect(stats).toHaveLength(3);
    expect(Buffer.compare(readFileSync(p('out')), imgs[3]!)).toBe(0);
    await expect(patchImage(p('s0'), [p('d2'), p('d1')], p('bad'))).rejects.toMatchObject({ code: 'ERR_DELTA_WRONG_BASE' });
    await expect(patchImage(p('s0'), [p('d1'), p('d3')], p('bad'))).rejects.toMatchObject({ code: 'ERR_DELTA_WRONG_BASE', message: expect.stringContaining('the result of delta 1') });
  });
});
