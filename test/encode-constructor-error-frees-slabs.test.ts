/**
 * `xbzrle encode` to a file: the output slabs are `allocPages` buffers, which
 * stay allocated until freed (the engine keeps them; the garbage collector
 * never gives them back). The encoder is constructed after the slabs' pool
 * and before the `try` whose `finally` frees them: an encoder constructor that
 * throws after its record writer took its first slab (here: an image size past
 * the cache's 128 TiB of declared blocks, from stdin) leaves that slab
 * allocated for good, one per in-process `main()` call.
 */
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../lib/cli/main.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { scratchFolders } from './helpers/cli.js';

const dirs = scratchFolders('xbzrle-encode-ctor-error-');

/** allocPages buffers not given back (the engine's own record of them). */
const pagesOut = (): number => (getEngine() as unknown as { pageAllocations: Map<number, Uint8Array> }).pageAllocations.size;

describe('encode whose encoder cannot be made', () => {
  it('gives its output slabs back', async () => {
    const engine = getEngine();
    if (engine === null || !engine.shared) return; // no kernel memory: plain slabs, nothing to give back
    const dir = dirs.fresh('ctor');
    const stderr = new PassThrough();
    let text = '';
    stderr.on('data', (d) => (text += d));
    const stdout = Object.assign(new PassThrough(), { isTTY: false });
    const before = pagesOut();
    for (let i = 0; i < 3; i++) {
      const code = await main(['encode', '--image-size', '200T', '--cache-size', '1M', '--threads', '1', '-q', '-o', join(dir, 'out.xs')], {
        stdin: Readable.from([Buffer.alloc(4096)]),
        stdout,
        stderr,
        env: {},
      });
      expect(code).toBe(1);
    }
    expect(text).toMatch(/128 TiB/); // the constructor's error, after the writer took a slab
    expect(pagesOut()).toBe(before);
  });
});
