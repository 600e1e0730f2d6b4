/**
 * (Pre-existing, next to the slabs' leak) `xbzrle encode` of image files makes
 * its RoundCheck (an `allocPages` scratch buffer, never garbage collected)
 * before opening the output: an output refused (`-o` existing without -f,
 * `>> INPUT`, a terminal) left the scratch allocated, one per in-process run.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../lib/cli/main.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { scratchFolders } from './helpers/cli.js';

const dirs = scratchFolders('xbzrle-encode-refused-');
const pagesOut = (): number => (getEngine() as unknown as { pageAllocations: Map<number, Uint8Array> }).pageAllocations.size;

describe('encode whose output is refused', () => {
  it('gives the round check memory back', async () => {
    const engine = getEngine();
    if (engine === null || !engine.shared) return;
    const dir = dirs.fresh('refused');
    const image = join(dir, 'a.img');
    writeFileSync(image, randomBytes(64 * 4096, rng(1)));
    const out = join(dir, 'out.xs');
    writeFileSync(out, 'already here');
    const stderr = new PassThrough();
    stderr.resume();
    const before = pagesOut();
    for (let i = 0; i < 3; i++) {
      expect(await main(['encode', image, '-o', out], { stdin: Readable.from([]), stdout: Object.assign(new PassThrough(), { isTTY: false }), stderr, env: {} })).toBe(1);
    }
    expect(pagesOut()).toBe(before);
  });
});
