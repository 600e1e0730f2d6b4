/**
 * The encoder's run path — groups of pages stepped, and their records
 * written, a run at a time by the kernel's `step_run`: on the pool's workers
 * with threads (on every group, and in turns with the calling thread's
 * page-by-page path, whatever the tuner would choose), on the calling thread
 * alone with one — gives the bytes, chunks and statistics of the page-by-page
 * path of one thread (the reference), over page sizes, caches of fewer slots
 * than pages, XBZRLE off, the final stage, plain and kernel-memory input,
 * feedRound, and full 4 MiB batches. (Written from a review helper's harness.)
 */
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EncoderCore } from '../lib/core/encoder.js';
import { forcePoolPath } from '../lib/core/path-tuner.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { encodeImages, memoryRounds } from './helpers/rounds.js';

const engine = getEngine();
const poolAvailable = engine !== null && getKernelPool(engine, 2) !== null;

interface Opts {
  ps: number;
  cacheSize: number;
  threads: number;
  /** Pages per record. */
  run: number;
  chunkSize: number;
  final: boolean;
  xbzrle: boolean;
  /** Every input through feedRound, the previous round given again. */
  reread: boolean;
}

/** Pages encoded in runs (the path under test was taken), and of those, on the pool. */
let pooledPages = 0;
let poolPages = 0;

function encode(images: Uint8Array[], o: Opts): { bytes: Uint8Array; chunks: number[]; stats: unknown } {
  const size = images[0]!.length;
  const core = new EncoderCore({ pageSize: o.ps, cacheSize: o.cacheSize, threads: o.threads, xbzrle: o.xbzrle, blocks: [{ id: 'ram', length: size }], chunkSize: o.chunkSize, previousRounds: o.reread });
  const batch = core as unknown as { encodeBatch: (r: unknown, first: number, count: number, onPool: boolean) => number };
  const own = batch.encodeBatch.bind(core);
  batch.encodeBatch = (r, first, count, onPool) => {
    const done = own(r, first, count, onPool);
    pooledPages += done;
    if (onPool) poolPages += done;
    return done;
  };
  try {
    return encodeImages(core, images, { pageSize: o.ps, run: o.run, final: o.final, reread: o.reread });
  } finally {
    core.dispose(true);
  }
}

/** The encoding of `o` with the pool path forced as `mode` is one thread's: bytes, chunks and statistics. */
function expectOneThreads(images: Uint8Array[], o: Opts, mode: 'pool' | 'alternate'): void {
  forcePoolPath('alone');
  const one = encode(images, { ...o, threads: 1 });
  forcePoolPath(mode);
  const many = encode(images, o);
  expect(Buffer.compare(many.bytes, one.bytes)).toBe(0);
  expect(many.chunks).toEqual(one.chunks);
  expect(many.stats).toEqual(one.stats);
}

afterEach(() => forcePoolPath(null));
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});

describe.skipIf(!poolAvailable).each(['pool', 'alternate'] as const)('the threaded encoder with its pool path forced (%s)', (mode) => {
  it('gives the bytes and statistics of one thread: page sizes, tiny caches, XBZRLE off, final stage, plain or kernel-memory input', () => {
    pooledPages = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(1024, 4096, 16384),
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 1, max: 4 }),
        fc.nat(),
        fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 8, max: 12 })), // log2 of the cache's slots
        fc.integer({ min: 1, max: 4 }), // 1: runs on the calling thread alone
        fc.integer({ min: 1, max: 700 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(true, true, true, false),
        fc.constantFrom(512, 4096, 65536),
        (ps, pages, rounds, seed, slotsLog, threads, run, inKernel, final, xbzrle, chunkSize) => {
          const images = memoryRounds(pages, rounds, seed, inKernel, ps);
          expectOneThreads(images, { ps, cacheSize: ps << slotsLog, threads, run, chunkSize, final, xbzrle, reread: false }, mode);
        },
      ),
      { numRuns: 15 },
    );
    expect(pooledPages).toBeGreaterThan(0);
  });

  it('gives the bytes and statistics of one thread with feedRound (the cache keeping bookkeeping only)', () => {
    pooledPages = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(1024, 4096),
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 2, max: 4 }),
        fc.nat(),
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 700 }),
        fc.boolean(),
        (ps, pages, rounds, seed, slotsLog, threads, run, final) => {
          // The previous pages in kernel memory, as the pool needs them.
          const images = memoryRounds(pages, rounds, seed, true, ps);
          expectOneThreads(images, { ps, cacheSize: ps << slotsLog, threads, run, chunkSize: 4096, final, xbzrle: true, reread: true }, mode);
        },
      ),
      { numRuns: 10 },
    );
    expect(pooledPages).toBeGreaterThan(0);
  });

  it('gives the bytes and statistics of one thread over full 4 MiB batches of 1, 4 and 16 KiB pages', () => {
    for (const [ps, pages] of [[1024, 9000], [16384, 700], [4096, 2500]] as const) {
      for (const inKernel of [false, true]) {
        const images = memoryRounds(pages, 3, ps + pages, inKernel, ps);
        const o: Opts = { ps, cacheSize: 1 << 24, threads: 1, run: pages, chunkSize: 65536, final: true, xbzrle: true, reread: false };
        forcePoolPath('alone');
        const one = encode(images, o);
        forcePoolPath(mode);
        for (const threads of [1, 2]) {
          pooledPages = 0;
          poolPages = 0;
          const many = encode(images, { ...o, threads });
          expect(pooledPages).toBeGreaterThan(0);
          if (threads > 1) expect(poolPages).toBeGreaterThan(0);
          expect(Buffer.compare(many.bytes, one.bytes)).toBe(0);
          expect(many.chunks).toEqual(one.chunks);
          expect(many.stats).toEqual(one.stats);
        }
      }
    }
  });
});
