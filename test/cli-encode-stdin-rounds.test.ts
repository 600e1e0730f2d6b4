/**
 * `xbzrle encode` from stdin gathers its 2 MiB pieces from the stream's
 * chunks, and caches each round (files are read again instead). Rounds larger
 * than a piece, in chunks that never line up with a piece or a page, give the
 * stream that the same rounds as files give (one thread: `cli-threads` and
 * `threads-encoder` check that threads change nothing).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rng } from './helpers/bytes.js';
import { runMain, scratchFolders } from './helpers/cli.js';

const dirs = scratchFolders('xbzrle-encode-stdin-');
const PS = 4096;

/** Rounds of `pages` pages: a first image, then each with a third of its pages edited a little. */
function rounds(pages: number, count: number, seed: number): Uint8Array[] {
  const rand = rng(seed);
  const out: Uint8Array[] = [];
  let img = new Uint8Array(pages * PS);
  for (let i = 0; i < img.length; i += 3) img[i] = Math.floor(rand() * 256);
  for (let r = 0; r < count; r++) {
    if (r > 0) {
      img = img.slice();
      for (let p = 0; p < pages; p++) {
        if (rand() < 0.33) for (let k = 0; k < 16; k++) img[p * PS + Math.floor(rand() * PS)] = Math.floor(rand() * 256);
      }
    }
    out.push(img);
  }
  return out;
}

describe('encode from stdin', () => {
  it('writes the stream the same rounds as files give', async () => {
    const dir = dirs.fresh('rounds');
    const images = rounds(1300, 3, 7); // 5.1 MiB rounds: pieces straddle rounds and stdin's 64 KiB chunks
    const files = images.map((img, i) => {
      const p = join(dir, `r${i}.img`);
      writeFileSync(p, img);
      return p;
    });
    const stream = join(dir, 'files.xs');
    expect((await runMain(['encode', ...files, '-o', stream, '-q', '--threads', '1'])).code).toBe(0);
    const expected = readFileSync(stream);
    const got = await runMain(['encode', '--image-size', String(images[0]!.length), '-q', '--threads', '1'], { input: Buffer.concat(images) });
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout.equals(expected)).toBe(true);
  });
});
