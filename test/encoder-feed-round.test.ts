import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderCore } from '../lib/core/encoder.js';
import { freePages, PageCache } from '../lib/index.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { encodeImages, memoryRounds } from './helpers/rounds.js';

// EncoderCore.feedRound: the driver gives each record's pages as they were when
// last fed (`encode` reads the previous image file again) and the cache keeps
// only its bookkeeping. Output and statistics must be those of feed().

const engine = getEngine();
// The pools of 2 to 4 threads made now: an encoder then uses its pool from its first group
// (a pool not made yet waits for work enough to pay for its start: encoder-pool-starts-with-work).
const poolAvailable = engine !== null && [2, 3, 4].every((t) => getKernelPool(engine, t) !== null);
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});


interface Run {
  pageSize: number;
  cacheSize: number;
  threads: number;
  /** Pages per record. */
  run: number;
  /** The last round ends with sync(true) (QEMU's final stage). */
  final: boolean;
}

/** Every image in records of `run` pages, a sync after each; feedRound with the image before when `reread`. */
function encode(images: Uint8Array[], o: Run, reread: boolean): { bytes: Uint8Array; stats: unknown } {
  const ps = o.pageSize;
  const size = images[0]!.length;
  const core = new EncoderCore({ pageSize: ps, cacheSize: o.cacheSize, threads: o.threads, blocks: [{ id: 'ram', length: size }], chunkSize: 1 << 16, previousRounds: reread });
  try {
    const out = encodeImages(core, images, { pageSize: ps, run: o.run, final: o.final, reread });
    // With threads, both paths run on the pool (the bookkeeping-only cache too).
    if (o.threads > 1 && poolAvailable) expect(poolOf(core)).toBeTruthy();
    return out;
  } finally {
    core.dispose(true);
  }
}

/** The core's worker pool (null: none started; undefined would mean the field is gone, and fails the checks). */
const poolOf = (core: EncoderCore): unknown => {
  const runs = (core as unknown as { runs: { pool: unknown } | null }).runs;
  return runs === null ? null : runs.pool;
};
/** Groups of pages the core's tuner sent to the pool (or 0). */
const poolGroups = (core: EncoderCore): number => (core as unknown as { tuner: { groups: number } | null }).tuner?.groups ?? 0;

describe('EncoderCore.feedRound (the previous round given again, the cache keeping only bookkeeping)', () => {
  // The CLI's encode of files: a first round's pages are all misses (a zero test each and their
  // records, written on the calling thread anyway); the pool would only slow it down.
  it('encodes a round fed without previous pages on the calling thread, a pool made already used for the next', () => {
    if (!poolAvailable) return;
    const images = memoryRounds(64, 2, 7, true, 4096);
    const core = new EncoderCore({ pageSize: 4096, cacheSize: 64 * 4096, threads: 2, blocks: [{ id: 'ram', length: images[0]!.length }], previousRounds: true });
    try {
      core.feedRound({ block: 'ram', offset: 0, data: images[0]! }, null);
      while (core.next() !== undefined);
      core.sync(false);
      while (core.next() !== undefined);
      expect(poolOf(core)).toBeTruthy();
      expect(poolGroups(core)).toBe(0);
      core.feedRound({ block: 'ram', offset: 0, data: images[1]! }, images[0]!);
      while (core.next() !== undefined);
      expect(poolGroups(core)).toBeGreaterThan(0);
    } finally {
      core.dispose(true);
      for (const img of images) freePages(img);
    }
  });

  it('writes the bytes and statistics of feed() for any rounds, cache size, page size, record size, threads and final stage', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 1, max: 4 }),
        fc.nat(),
        fc.constantFrom(1024, 4096),
        fc.constantFrom(1, 16, 256, 4096), // cache pages: most runs have slots shared by several pages
        fc.constantFrom(1, 2, 3),
        fc.constantFrom(1, 7, 512),
        fc.boolean(),
        fc.boolean(),
        (pages, count, seed, pageSize, cachePages, threads, run, final, inKernel) => {
          const images = memoryRounds(pages, count, seed, inKernel, pageSize);
          try {
            const o: Run = { pageSize, cacheSize: cachePages * pageSize, threads, run, final };
            const reread = encode(images, o, true);
            const cached = encode(images, o, false);
            expect(reread.stats).toEqual(cached.stats);
            expect(Buffer.from(reread.bytes).equals(Buffer.from(cached.bytes))).toBe(true);
          } finally {
            if (inKernel) for (const img of images) freePages(img);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('never writes into the cache, whose arena stays out of the kernel memory, untouched', () => {
    const images = memoryRounds(64, 3, 7, false);
    const core = new EncoderCore({ cacheSize: 64 * 4096, blocks: [{ id: 'ram', length: images[0]!.length }], previousRounds: true });
    try {
      images.forEach((img, r) => {
        core.feedRound({ block: 'ram', offset: 0, data: img }, r === 0 ? null : images[r - 1]!);
        while (core.next() !== undefined);
        core.sync(false);
        while (core.next() !== undefined);
      });
      expect(core.cache.count).toBeGreaterThan(0);
      expect(core.cache.arenaPtr).toBe(-1);
      expect(core.cache.arena.every((b) => b === 0)).toBe(true);
    } finally {
      core.dispose(true);
    }
  });

  it('is refused where its promise cannot hold', () => {
    const page = new Uint8Array(4096).fill(1);
    const shared = new PageCache({ size: 1 << 20 });
    const onShared = new EncoderCore({ cache: shared });
    expect(() => onShared.feedRound({ block: 'ram', offset: 0, data: page }, null)).toThrow(/cache of its own/);
    onShared.dispose(true);
    shared.dispose();

    const mixed = new EncoderCore({});
    mixed.feed({ block: 'ram', offset: 0, data: page });
    while (mixed.next() !== undefined);
    expect(() => mixed.feedRound({ block: 'ram', offset: 0, data: page }, page)).toThrow(/after feed/);
    mixed.dispose(true);

    const core = new EncoderCore({});
    core.feedRound({ block: 'ram', offset: 0, data: page }, null);
    while (core.next() !== undefined);
    expect(() => core.feed({ block: 'ram', offset: 0, data: page })).toThrow(/after feedRound/);
    expect(() => core.feedRound({ block: 'ram', offset: 0, data: page }, new Uint8Array(1024))).toThrow(/previous pages/);
    // The page is cached now: without its previous bytes there is nothing to encode against.
    core.feedRound({ block: 'ram', offset: 0, data: page }, null);
    expect(() => core.next()).toThrow(/without the previous pages/);
    core.dispose(true);
  });
});
