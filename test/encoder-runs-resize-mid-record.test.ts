/**
 * A cache resized between two output chunks of one record (a paused reader;
 * `setCacheSize`, or another encoder sharing the cache) takes effect at the
 * next page on one thread, in runs as page by page: the run stops at the
 * page after which the writer emits a chunk. Bytes, chunks, statistics and
 * the cache's counters are those of the page-by-page path. (From a review:
 * runs of 64 pages once encoded past the chunk, and the resize came late.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EncoderCore } from '../lib/core/encoder.js';
import { forcePoolPath } from '../lib/core/path-tuner.js';
import { PageCache } from '../lib/cache/page-cache.js';
import { coreOutput, drainCore, type CoreOutput } from './helpers/rounds.js';

const PS = 4096;
const PAGES = 64;

/** Every page non-zero; after round 0 one byte of each changed (an XBZRLE record each). */
function image(round: number): Uint8Array {
  const a = new Uint8Array(PAGES * PS);
  for (let p = 0; p < PAGES; p++) {
    a[p * PS] = 1 + p;
    if (round > 0) a[p * PS + 100] = round;
  }
  return a;
}

/** Two rounds; the cache shrunk to 2 pages after the 3rd chunk of round 2. */
function run(mode: 'alone' | null, shared: boolean, chunkSize: number): CoreOutput & { hits: number; misses: number } {
  forcePoolPath(mode);
  const cache = new PageCache({ size: PAGES * PS, pageSize: PS });
  const core = new EncoderCore({ pageSize: PS, chunkSize, threads: 1, ...(shared ? { cache } : { cacheSize: PAGES * PS }) });
  const c = shared ? cache : core.cache;
  const out: Uint8Array[] = [];
  try {
    for (let round = 0; round < 2; round++) {
      core.feed({ block: 'ram', offset: 0, data: image(round) });
      let n = 0;
      for (let ch = core.next(); ch !== undefined; ch = core.next()) {
        out.push(ch.slice());
        if (round === 1 && ++n === 3) c.resize(2 * PS);
      }
      core.sync(false);
      drainCore(core, out);
    }
    core.end();
    drainCore(core, out);
    return { ...coreOutput(core, out), hits: c.hits, misses: c.misses };
  } finally {
    core.dispose(true);
    if (shared) cache.dispose();
  }
}

afterEach(() => forcePoolPath(null));

describe('a cache resized between two chunks of one record, one thread in runs', () => {
  for (const shared of [false, true]) {
    for (const chunkSize of [16, 100, 200]) {
      it(`is seen from the next page, as page by page (${shared ? 'a shared cache' : "the encoder's cache"}, chunks of ${chunkSize} bytes)`, () => {
        const want = run('alone', shared, chunkSize);
        const got = run(null, shared, chunkSize);
        expect(got.chunks).toEqual(want.chunks);
        expect(Buffer.compare(got.bytes, want.bytes)).toBe(0);
        expect(got.stats).toEqual(want.stats);
        expect([got.hits, got.misses]).toEqual([want.hits, want.misses]);
        // The resize mattered: fewer hits than pages in round 2.
        expect(want.hits).toBeLessThan(PAGES);
      });
    }
  }
});
