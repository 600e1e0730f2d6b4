import { describe, expect, it } from 'vitest';
import { applyInMemory, encodeInMemory, fillPage, rng } from './delta-images.js';

describe('page deduplication', () => {
  it('moved pages become references to OLD, duplicated new pages references to NEW, verified by bytes', async () => {
    const ps = 4096;
    const pages = 256;
    const r = rng(3);
    const oldImg = new Uint8Array(pages * ps);
    for (let i = 0; i < pages; i++) fillPage(oldImg, i, ps, 3, r);
    const newImg = oldImg.slice();
    // move 32 pages by 100 (both directions)
    for (let i = 0; i < 32; i++) newImg.set(oldImg.subarray((i + 150) * ps, (i + 151) * ps), i * ps);
    for (let i = 0; i < 16; i++) newImg.set(oldImg.subarray(i * ps, (i + 1) * ps), (i + 200) * ps);
    // one new page, duplicated 10 times
    fillPage(newImg, 40, ps, 3, r);
    for (let i = 41; i < 51; i++) newImg.copyWithin(i * ps, 40 * ps, 41 * ps);
    const { delta, stats } = await encodeInMemory(oldImg, newImg);
    expect(stats.refOld).toBe(48);
    expect(stats.refNew).toBe(10);
    expect(stats.page).toBe(1);
    expect(delta.length).toBeLessThan(3 * ps);
    const { image } = await applyInMemory(oldImg, delta, 'random');
    expect(Buffer.compare(image, newImg)).toBe(0);
    // without dedup the same pages cost pages
    const plain = await encodeInMemory(oldImg, newImg, { dedup: false, compress: false });
    expect(plain.stats.refOld + plain.stats.refNew).toBe(0);
    expect(plain.delta.length).toBeGreaterThan(58 * ps);
  });

  it('a hash collision never makes a reference: candidates are compared byte by byte', async () => {
    const ps = 4096;
    const oldImg = new Uint8Array(8 * ps);
    const r = rng(4);
    for (let i = 0; i < 8; i++) fillPage(oldImg, i, ps, 3, r);
    const newImg = oldImg.slice();
    newImg.set(oldImg.subarray(5 * ps, 6 * ps), 0);
    newImg[10] = newImg[10]! ^ 0xff; // near-copy, not a copy
    const { delta, stats } = await encodeInMemory(oldImg, newImg);
    expect(stats.refOld).toBe(0);
    expect(Buffer.compare((await applyInMemory(oldImg, delta)).image, newImg)).toBe(0);
  });
});
