/**
 * An encoder with threads starts its worker pool only once it has work for
 * it: when no encoder made that pool yet, its groups run on the calling
 * thread alone until they took ~50 ms on pages sent as deltas or whole (a
 * worker's start costs about that much of a core, and on 2 cores it took the
 * core that reads the files; pages found unchanged or zero, a compare or a
 * zero test each, gain little from it). A small job starts no thread; a job
 * with work enough starts the pool and goes on with it; the bytes and
 * statistics are those of one thread either way. (The thread counts are ones
 * no other test asks for: their pools exist only if this file made them.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EncoderCore, setPoolStartMs } from '../lib/core/encoder.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { disposeKernelPools, hasKernelPool, KernelPool } from '../lib/codec/wasm/pool.js';
import { freePages } from '../lib/index.js';
import { encodeImages, memoryRounds, type CoreOutput } from './helpers/rounds.js';

const engine = getEngine();
const shared = engine !== null && engine.shared;

afterEach(() => {
  vi.restoreAllMocks();
  setPoolStartMs(undefined);
  if (engine !== null) disposeKernelPools(engine);
});

/** `images` as rounds encoded with `threads`: the core's output, whether the pool of `threads` exists after, and the batches it ran. */
function encode(images: Uint8Array[], threads: number, reread: boolean): { out: CoreOutput; pool: boolean; groups: number } {
  const size = images[0]!.length;
  const core = new EncoderCore({ pageSize: 4096, cacheSize: size, threads, blocks: [{ id: 'ram', length: size }], chunkSize: 1 << 16, previousRounds: reread });
  // Batches started on a pool (any pool: only this encoder runs here).
  const start = vi.spyOn(KernelPool.prototype, 'start');
  try {
    const out = encodeImages(core, images, { pageSize: 4096, run: 256, final: false, reread });
    return { out, pool: engine !== null && hasKernelPool(engine, threads), groups: start.mock.calls.length };
  } finally {
    start.mockRestore();
    core.dispose(true);
  }
}

/** Three rounds of `pages` pages encoded with `threads`, checked against one thread's output: whether the pool exists after, and the batches it ran. */
function againstOneThread(pages: number, seed: number, threads: number, reread: boolean): { pool: boolean; groups: number } {
  const images = memoryRounds(pages, 3, seed, true);
  try {
    const one = encode(images, 1, reread);
    const many = encode(images, threads, reread);
    expect(many.out).toEqual(one.out);
    return { pool: many.pool, groups: many.groups };
  } finally {
    for (const img of images) freePages(img);
  }
}

describe('the encoder starts its worker pool once it has work for it', () => {
  for (const reread of [false, true]) {
    const mode = reread ? 'previous rounds given again (the CLI on files)' : 'the cache holding the pages';
    it(`a small job starts no thread, with ${mode}; the bytes of one thread`, () => {
      if (!shared) return;
      // (256 pages a round: ~1-3 ms of work, far from the 50 ms even on a loaded machine.)
      expect(againstOneThread(256, 5, 6, reread)).toEqual({ pool: false, groups: 0 });
    });

    it(`a job with work for it starts the pool and uses it, with ${mode}; the bytes of one thread`, () => {
      if (!shared) return;
      setPoolStartMs(1e-9); // any time on pages sent is work enough: the pool starts with the next group
      const seven = againstOneThread(3072, 6, 7, reread);
      expect(seven.pool).toBe(true);
      expect(seven.groups).toBeGreaterThan(0);
    });
  }

  it('counts the time of pages sent as deltas or whole, not of pages found unchanged or zero', () => {
    if (!shared) return;
    setPoolStartMs(1e-9);
    // Image files given again (the CLI's encode): a first round of misses runs page by page and
    // counts for nothing; then two rounds of the same pages, every one unchanged (or zero, sent as ZERO again).
    const [img] = memoryRounds(2048, 1, 9, true);
    try {
      const same = [img!, img!, img!];
      expect(encode(same, 5, true).out).toEqual(encode(same, 1, true).out);
      expect(engine !== null && hasKernelPool(engine, 5)).toBe(false);
    } finally {
      freePages(img!);
    }
  });

  it('uses a pool made already (by an earlier encoder over the same memory) from the first group', () => {
    if (!shared) return;
    const images = memoryRounds(1024, 2, 8, true);
    try {
      setPoolStartMs(1e-9);
      expect(encode(images, 3, false).pool).toBe(true);
      setPoolStartMs(undefined);
      const again = encode(images, 3, false);
      expect(again.groups).toBeGreaterThan(0); // small as it is, the job took groups to the pool
    } finally {
      for (const img of images) freePages(img);
    }
  });
});
