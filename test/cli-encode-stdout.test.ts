import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../lib/cli/main.js';
import { outputSlabs } from '../lib/cli/commands/encode.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { scratchFolders } from './helpers/cli.js';

const dirs = scratchFolders('xbzrle-encode-stdout-');

describe('encode to a stdout stream', () => {
  // Regression (review): output slabs were reused once stdout's write() returned, while a
  // Writable may still hold the chunk (here: kept, its callback called later).
  it('writes the bytes -o FILE gets, to a stdout that keeps the chunks it was given', async () => {
    const dir = dirs.fresh('keep');
    const rand = rng(3);
    const images: string[] = [];
    for (let r = 0; r < 6; r++) {
      const p = join(dir, `r${r}.img`);
      writeFileSync(p, randomBytes(768 * 4096, rand)); // 18 MiB of output: several slabs, reused
      images.push(p);
    }
    const file = join(dir, 'out.xs');
    const quiet = new PassThrough();
    quiet.resume();
    const io = (stdout: Writable) => ({ stdin: Readable.from([]), stdout: Object.assign(stdout, { isTTY: false }), stderr: quiet, env: {} });
    expect(await main(['encode', ...images, '-o', file, '-q', '--cache-size', '1M'], io(new PassThrough()))).toBe(0);
    const kept: Uint8Array[] = [];
    const holding = new Writable({
      write(chunk: Uint8Array, _e, cb) {
        kept.push(chunk); // no copy: the chunk must stay as it was
        setTimeout(cb, 5);
      },
    });
    expect(await main(['encode', ...images, '-q', '--cache-size', '1M'], io(holding))).toBe(0);
    expect(Buffer.concat(kept).equals(readFileSync(file))).toBe(true);
  });

  // Regression (review): with a stdout stream the slabs went to a pool that never let them go
  // (nothing said the sink was done with them), so memory grew with the whole output.
  it('keeps no output slab for reuse when the output is a stream', () => {
    const kept = (releasesChunks: boolean): number => {
      const slabs = outputSlabs(releasesChunks);
      for (let i = 0; i < 50; i++) {
        const slab = slabs.alloc(1 << 20);
        slabs.release?.(slab, 1 << 20);
      }
      const held = slabs.held();
      slabs.dispose(); // kernel memory: never taken back by the garbage collector
      return held;
    };
    expect(kept(false)).toBe(0);
    expect(kept(true)).toBe(50); // a file: kept, each until the sink is done with its bytes
  });

  // A stdout that is a file (`> out`, `>> out`) or /dev/null is written through its
  // descriptor, at the descriptor's own position, never through the stream.
  it('writes a file stdout through its descriptor, appending after what `>>` kept', async () => {
    const dir = dirs.fresh('fd');
    const rand = rng(5);
    const images: string[] = [];
    for (let r = 0; r < 3; r++) {
      const p = join(dir, `r${r}.img`);
      writeFileSync(p, randomBytes(600 * 4096, rand));
      images.push(p);
    }
    const quiet = new PassThrough();
    quiet.resume();
    const unused = new Writable({
      write(_chunk, _e, cb) {
        cb(new Error('written through the stream'));
      },
    });
    const run = async (args: string[], stdoutFd?: number): Promise<number> =>
      main(args, { stdin: Readable.from([]), stdout: Object.assign(unused, { isTTY: false }), stderr: quiet, env: {}, ...(stdoutFd === undefined ? {} : { stdoutFd }) });
    const file = join(dir, 'out.xs');
    expect(await run(['encode', ...images, '-o', file, '-q', '--cache-size', '1M'])).toBe(0);
    const expected = readFileSync(file);
    const appended = join(dir, 'appended.xs');
    writeFileSync(appended, 'kept');
    const fd = openSync(appended, 'a');
    try {
      expect(await run(['encode', ...images, '-q', '--cache-size', '1M'], fd)).toBe(0);
    } finally {
      closeSync(fd);
    }
    expect(Buffer.concat([Buffer.from('kept'), expected]).equals(readFileSync(appended))).toBe(true);
    const devNull = openSync('/dev/null', 'w');
    try {
      expect(await run(['encode', ...images, '-q', '--cache-size', '1M'], devNull)).toBe(0);
    } finally {
      closeSync(devNull);
    }
  });
});
