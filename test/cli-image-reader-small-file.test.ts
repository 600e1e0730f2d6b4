/**
 * The image reader's buffers are no bigger than the image: a small image
 * takes two buffers of its own size, not two of the 2 MiB step (which a
 * later reuse then cleared, first touching all of their memory: ~40 ms of
 * an `encode` of two small images on the bench VM). The bytes are the same.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readImageRuns } from '../lib/cli/image-reader.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { scratchFolders } from './helpers/cli.js';

const dirs = scratchFolders('xbzrle-image-reader-');
const PS = 4096;

describe('readImageRuns of an image smaller than its step', () => {
  it('takes buffers of the image size and reads it whole', async () => {
    const file = join(dirs.fresh('small'), 'small.img');
    const img = randomBytes(3 * PS, rng(5));
    writeFileSync(file, img);
    const engine = getEngine();
    const before = engine?.allocated ?? 0;
    const pieces: Uint8Array[] = [];
    let most = 0;
    for await (const piece of readImageRuns(file, 2 << 20, PS)) {
      pieces.push(piece.slice());
      most = Math.max(most, (engine?.allocated ?? 0) - before);
    }
    expect(pieces.map((p) => p.length)).toEqual([3 * PS]);
    expect(Buffer.compare(pieces[0]!, img)).toBe(0);
    if (engine !== null) expect(most).toBeLessThanOrEqual(2 * 3 * PS + 2 * 64); // two buffers of 3 pages (and their alignment)
    expect(engine?.allocated ?? 0).toBe(before);
  });
});
