/**
 * `threads > 1` where no worker can start (a runtime without worker threads,
 * as a browser): the encoder works in runs on the calling thread alone — no
 * pool, no tuner — and writes the bytes, chunks and statistics of the
 * page-by-page path.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EncoderCore, setPoolStartMs } from '../lib/core/encoder.js';
import { forcePoolPath } from '../lib/core/path-tuner.js';
import { setWorkerThreads } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { encodeImages, memoryRounds } from './helpers/rounds.js';

// Encoders here start their worker pool with their second group of pages: by default it waits for
// ~50 ms of pages sent (encoder-pool-starts-with-work), more than these inputs give.
beforeAll(() => setPoolStartMs(0));
afterAll(() => setPoolStartMs(undefined));

afterEach(() => {
  setWorkerThreads(undefined);
  forcePoolPath(null);
});

describe.skipIf(getEngine() === null)('threads without worker threads', () => {
  it('encodes in runs on the calling thread, as page by page', () => {
    const ps = 4096;
    const images = memoryRounds(700, 3, 11, true, ps);
    const run = (threads: number, mode: 'alone' | null): { out: ReturnType<typeof encodeImages>; runs: unknown; pool: unknown; tuner: unknown } => {
      forcePoolPath(mode);
      const core = new EncoderCore({ pageSize: ps, cacheSize: 256 * ps, threads, chunkSize: 4096, blocks: [{ id: 'ram', length: 700 * ps }] });
      try {
        const out = encodeImages(core, images, { pageSize: ps, run: 300, final: true, reread: false });
        const inside = core as unknown as { runs: { pool: unknown } | null; tuner: unknown };
        return { out, runs: inside.runs, pool: inside.runs?.pool, tuner: inside.tuner };
      } finally {
        core.dispose(true);
      }
    };
    const want = run(1, 'alone');
    setWorkerThreads(null); // as in a browser; 7 threads: no pool of that size exists yet
    const got = run(7, null);
    expect(got.runs).not.toBeNull();
    expect(got.pool).toBeNull();
    expect(got.tuner).toBeNull();
    expect(Buffer.compare(got.out.bytes, want.out.bytes)).toBe(0);
    expect(got.out.chunks).toEqual(want.out.chunks);
    expect(got.out.stats).toEqual(want.out.stats);
  });
});
