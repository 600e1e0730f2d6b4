/**
 * `xbzrle encode IMAGE` with one image file sends one round: every page a
 * miss, encoded on the calling thread. It starts no worker pool whatever
 * `--threads` says (workers would never get a page, and their start took the
 * other core of a 2-core machine from the reads); two images, whose second
 * round the pool can take, start it once that round has work enough for it
 * (here made to at once). The output is the same either way.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../lib/cli/main.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { setPoolStartMs } from '../lib/core/encoder.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { scratchFolders } from './helpers/cli.js';

const dirs = scratchFolders('xbzrle-encode-one-image-');
const THREADS = 5; // a count no other test asks for: its pool exists only if this test made it

/** The pool of `threads` threads over the kernel's memory, if one was made (without making one). */
function poolExists(threads: number): boolean {
  const engine = getEngine();
  const pools = (globalThis as Record<symbol, WeakMap<object, Map<number, unknown>> | undefined>)[Symbol.for('xbzrle.kernel-pools.v1')];
  return engine !== null && pools?.get(engine)?.has(threads) === true;
}

describe('encode of one image file', () => {
  it('starts no workers; two images do; the same output as one thread', async () => {
    const engine = getEngine();
    if (engine === null || !engine.shared) return; // no shared memory: never a pool
    const dir = dirs.fresh('one');
    const rand = rng(11);
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    const img = randomBytes(2048 * 4096, rand); // more than one group of pages (1024 with threads)
    writeFileSync(a, img);
    img[5000] = img[5000]! ^ 1;
    writeFileSync(b, img);
    const quiet = new PassThrough();
    quiet.resume();
    const io = () => ({ stdin: Readable.from([]), stdout: Object.assign(new PassThrough(), { isTTY: false }), stderr: quiet, env: {} });
    const run = async (out: string, threads: number, ...images: string[]): Promise<Buffer> => {
      expect(await main(['encode', ...images, '-o', join(dir, out), '-q', '--threads', String(threads)], io())).toBe(0);
      return readFileSync(join(dir, out));
    };
    // A pool starts as soon as a group of pages is sent in runs (the default waits for ~50 ms of
    // such work, more than these images give): what keeps it from one image is encode's own rule.
    setPoolStartMs(0);
    let one: Buffer;
    let two: Buffer;
    try {
      one = await run('one.xs', THREADS, a);
      expect(poolExists(THREADS)).toBe(false);
      two = await run('two.xs', THREADS, a, b);
    } finally {
      setPoolStartMs(undefined);
    }
    expect(one.equals(await run('one-1.xs', 1, a))).toBe(true);
    expect(poolExists(THREADS)).toBe(true);
    expect(two.equals(await run('two-1.xs', 1, a, b))).toBe(true);
  });
});
