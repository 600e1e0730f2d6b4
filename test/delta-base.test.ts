import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage, verifyDelta } from '../lib/delta/index.js';
import { makePair } from './delta-images.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-base-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string): string => join(dir, n);
let oldImg: Uint8Array;
let newImg: Uint8Array;

beforeAll(async () => {
  ({ oldImg, newImg } = makePair(21, 64, 4096));
  writeFileSync(p('old'), oldImg);
  writeFileSync(p('new'), newImg);
  await diffImages(p('old'), p('new'), p('delta'));
  await diffImages(p('old'), p('new'), p('delta8k'), { pageSize: 8192 });
});

describe('patch refuses a base the delta was not made from', () => {
  it('wrong size: one-line message with both sizes, nothing written', async () => {
    writeFileSync(p('small'), oldImg.subarray(0, 16 * 4096));
    await expect(patchImage(p('small'), p('delta'), p('out1'))).rejects.toMatchObject({
      code: 'ERR_DELTA_WRONG_BASE',
      message: `${p('small')}: not the base this delta was made from (size 64 KiB, expected 256 KiB)`,
    });
    expect(existsSync(p('out1'))).toBe(false);
    const big = new Uint8Array(oldImg.length * 2);
    big.set(oldImg);
    writeFileSync(p('big'), big);
    await expect(patchImage(p('big'), p('delta'), p('out1'))).rejects.toMatchObject({ code: 'ERR_DELTA_WRONG_BASE', message: expect.stringContaining('size 512 KiB, expected 256 KiB') });
    expect(existsSync(p('out1'))).toBe(false);
  });

  it('same size, other content: refused; verify: false skips the OLD check (the result is still checked)', async () => {
    const other = oldImg.slice();
    // change a page the delta rewrites whole (so the result is still right), and check again with one it does not
    other[0] = other[0]! ^ 1;
    writeFileSync(p('other'), other);
    await expect(patchImage(p('other'), p('delta'), p('out2'))).rejects.toMatchObject({ code: 'ERR_DELTA_WRONG_BASE', message: `${p('other')}: not the base this delta was made from (same size, different content)` });
    expect(existsSync(p('out2'))).toBe(false);
    await expect(verifyDelta(p('delta'), p('other'))).rejects.toMatchObject({ code: 'ERR_DELTA_WRONG_BASE' });
    // with verify: false, OLD's digest is not compared; a page the delta does not cover changes the result, which is refused
    const same = newImg.subarray(0, 4096).every((v, i) => v === oldImg[i]);
    if (same) await expect(patchImage(p('other'), p('delta'), p('out2'), { verify: false })).rejects.toMatchObject({ message: expect.stringContaining("does not match the delta's checksum") });
    // a base that differs only where NEW's pages are ZERO/PAGE records is accepted with verify: false
  });

  it('another page size: ERR_DELTA_PAGE_SIZE when one is asked for', async () => {
    await expect(patchImage(p('old'), p('delta8k'), p('out3'), { pageSize: 4096 })).rejects.toMatchObject({ code: 'ERR_DELTA_PAGE_SIZE', message: "the delta's page size is 8192, not 4096" });
    expect(existsSync(p('out3'))).toBe(false);
    await expect(verifyDelta(p('delta8k'), undefined, { pageSize: 4096 })).rejects.toMatchObject({ code: 'ERR_DELTA_PAGE_SIZE' });
    // without one, the header's page size is used
    await patchImage(p('old'), p('delta8k'), p('out3'));
    expect(Buffer.compare(readFileSync(p('out3')), newImg)).toBe(0);
  });

  it('an existing output is refused without force and kept', async () => {
    writeFileSync(p('exists'), 'x');
    await expect(patchImage(p('old'), p('delta'), p('exists'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(p('exists'), 'utf8')).toBe('x');
  });

  it('not a delta: a plain stream is read as qemu format; garbage is refused', async () => {
    writeFileSync(p('junk'), new Uint8Array(100).fill(7));
    await expect(verifyDelta(p('junk'))).rejects.toThrow();
    await expect(patchImage(p('old'), p('junk'), p('out4'))).rejects.toThrow();
    expect(existsSync(p('out4'))).toBe(false);
  });
});
