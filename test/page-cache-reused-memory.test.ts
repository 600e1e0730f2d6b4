/**
 * A cache's arena is not cleared when the kernel's memory it gets was used
 * before (clearing a 512 MiB arena took ~160 ms): its slots start as
 * "may hold anything", so a zero page cached there is still written as
 * zeros, and a delta against it is made against zeros. The streams are those
 * of a cache in plain, zeroed memory: any rounds, with zero pages, rewrites
 * and small edits, for caches smaller and as large as the image, one and two
 * threads, and after a resize.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocPages, encodeRounds, freePages, PageCache, type PageRecord } from '../lib/index.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat, sameBytes } from './helpers/bytes.js';
import { memoryRounds } from './helpers/rounds.js';
import { setPoolStartMs } from '../lib/core/encoder.js';

// Encoders here start their worker pool with their second group of pages: by default it waits for
// ~50 ms of pages sent (encoder-pool-starts-with-work), more than these inputs give.
beforeAll(() => setPoolStartMs(0));
afterAll(() => setPoolStartMs(undefined));

const PS = 4096;

/** Kernel memory of `bytes`, filled with `byte` and given back: the next allocations reuse it dirty. */
function dirty(bytes: number, byte: number): void {
  const pages = allocPages(bytes / PS);
  pages.fill(byte);
  freePages(pages);
}

async function encode(images: readonly Uint8Array[], cache: PageCache, threads: number, resizeTo?: number): Promise<Uint8Array> {
  const out: Uint8Array[] = [];
  const rounds = images.map((img) => [{ block: 'pc.ram', offset: 0, data: img }] as PageRecord[]);
  async function* source(): AsyncGenerator<PageRecord[]> {
    for (const [i, r] of rounds.entries()) {
      if (resizeTo !== undefined && i === 1) cache.resize(resizeTo);
      yield r;
    }
  }
  for await (const c of encodeRounds(source(), { cache, threads })) out.push(new Uint8Array(c));
  return concat(out);
}

describe('a cache in reused kernel memory', () => {
  const engine = getEngine();

  it('is not cleared, and its first zero pages are written as zeros', () => {
    if (engine === null || !engine.shared) return; // a plain arena: always zeroed
    dirty(8 << 20, 0xa5);
    const cache = new PageCache({ size: 8 << 20 });
    expect(engine.takenDirty).toBeGreaterThan(0);
    const arena = (cache as unknown as { arena: Uint8Array }).arena;
    expect(arena.subarray(0, PS).every((b) => b === 0xa5)).toBe(true); // not cleared
    // A zero page cached in a slot that holds old bytes is written as zeros.
    expect(cache.insertZero(0)).toBe(true);
    expect(arena.subarray(0, PS).every((b) => b === 0)).toBe(true);
    cache.dispose();
  });

  it('writes the streams of a cache in plain zeroed memory', async () => {
    if (engine === null || !engine.shared) return;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          pages: fc.integer({ min: 1, max: 160 }),
          rounds: fc.integer({ min: 2, max: 4 }),
          cachePages: fc.integer({ min: 1, max: 200 }),
          threads: fc.constantFrom(1, 1, 2),
          resize: fc.option(fc.integer({ min: 1, max: 200 }), { nil: undefined }),
          byte: fc.integer({ min: 1, max: 255 }),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (p) => {
          const images = memoryRounds(p.pages, p.rounds, p.seed, true);
          const plain = new PageCache({ size: p.cachePages * PS, plainArena: true });
          const want = await encode(images, plain, p.threads, p.resize === undefined ? undefined : p.resize * PS);
          dirty(2 * (p.cachePages + 200) * PS, p.byte);
          const reused = new PageCache({ size: p.cachePages * PS });
          const got = await encode(images, reused, p.threads, p.resize === undefined ? undefined : p.resize * PS);
          plain.dispose();
          reused.dispose();
          for (const img of images) freePages(img);
          expect(got.length).toBe(want.length);
          expect(sameBytes(got, want)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });
});
