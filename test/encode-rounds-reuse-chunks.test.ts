/**
 * `encodeRounds(…, { reuseChunks: true })`: the output's memory is reused
 * once the consumer asks for the next chunk. The bytes are those of a run
 * without it (1 to 3 threads, any chunk size, records in and out of the
 * kernel's memory); a chunk kept past the next one is written over (so the
 * option does reuse); a few slabs serve a whole encode; the encoder is let
 * go however the loop ends (its cache in the kernel's memory given back);
 * the Node export yields Buffers, the web export Uint8Arrays.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRounds, type PageRecord, type XbzrleStats } from '../lib/index.js';
import { encodeRounds as webEncodeRounds } from '../lib/web/index.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat, sameBytes } from './helpers/bytes.js';
import { memoryRounds } from './helpers/rounds.js';
import { setPoolStartMs } from '../lib/core/encoder.js';

// Encoders here start their worker pool with their second group of pages: by default it waits for
// ~50 ms of pages sent (encoder-pool-starts-with-work), more than these inputs give.
beforeAll(() => setPoolStartMs(0));
afterAll(() => setPoolStartMs(undefined));

const PS = 4096;

/** The images as rounds of records of `run` pages. */
function asRounds(images: readonly Uint8Array[], run: number): PageRecord[][] {
  return images.map((img) => {
    const records: PageRecord[] = [];
    for (let at = 0; at < img.length; at += run * PS) records.push({ block: 'pc.ram', offset: at, data: img.subarray(at, Math.min(at + run * PS, img.length)) });
    return records;
  });
}

/** A copy of `c` (a Buffer's `slice()` is a view, not a copy). */
const copy = (c: Uint8Array): Uint8Array => new Uint8Array(c);

/** The statistics without the rate (time-dependent). */
function counters(stats: XbzrleStats): unknown {
  const s = stats.toJSON();
  return { ...s, ram: { ...s.ram, 'pages-per-second': 0 } };
}

/** Every chunk copied as it comes (a consumer done with each before the next). */
async function collect(chunks: AsyncIterable<Uint8Array>): Promise<{ bytes: Uint8Array; lengths: number[]; copies: Uint8Array[] }> {
  const copies: Uint8Array[] = [];
  for await (const c of chunks) copies.push(copy(c));
  return { bytes: concat(copies), lengths: copies.map((c) => c.length), copies };
}

describe('encodeRounds with reuseChunks', () => {
  it('writes the bytes, chunks and statistics of a run without it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          pages: fc.integer({ min: 1, max: 96 }),
          rounds: fc.integer({ min: 1, max: 4 }),
          run: fc.integer({ min: 1, max: 40 }),
          threads: fc.constantFrom(1, 1, 2),
          chunkSize: fc.constantFrom(256, 4096, 65536, 1 << 20),
          inKernel: fc.boolean(),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (p) => {
          const rounds = asRounds(memoryRounds(p.pages, p.rounds, p.seed, p.inKernel), p.run);
          const options = { cacheSize: p.pages * PS, threads: p.threads, chunkSize: p.chunkSize };
          const plain = encodeRounds(rounds, options);
          const want = await collect(plain);
          const reused = encodeRounds(rounds, { ...options, reuseChunks: true });
          const got = await collect(reused);
          expect(got.bytes.length).toBe(want.bytes.length);
          expect(sameBytes(got.bytes, want.bytes)).toBe(true);
          expect(got.lengths).toEqual(want.lengths);
          expect(counters(reused.stats)).toEqual(counters(plain.stats));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('writes over a chunk kept past the next one, from a few slabs for the whole encode', async () => {
    const rounds = asRounds(memoryRounds(256, 4, 7, true), 64);
    const kept: Uint8Array[] = [];
    const copies: Uint8Array[] = [];
    const slabs = new Set<ArrayBufferLike>();
    for await (const c of encodeRounds(rounds, { cacheSize: 256 * PS, chunkSize: 16384, reuseChunks: true })) {
      expect(Buffer.isBuffer(c)).toBe(true);
      kept.push(c);
      copies.push(copy(c));
      slabs.add(c.buffer);
    }
    expect(kept.length).toBeGreaterThan(40);
    // The whole output (~2 MiB) went through a handful of slabs…
    expect(slabs.size).toBeLessThanOrEqual(4);
    // …so most chunks kept hold later bytes now (without reuseChunks every chunk keeps its own).
    const changed = kept.filter((c, i) => !Buffer.from(c).equals(copies[i]!)).length;
    expect(changed).toBeGreaterThan(kept.length / 2);
  });

  it('lets the encoder go however the loop ends: done, break, or the source throwing', async () => {
    const engine = getEngine();
    if (engine === null || !engine.shared) return; // the cache in plain memory: nothing to count
    const rounds = asRounds(memoryRounds(64, 2, 9, true), 16);
    const once = async (how: 'done' | 'break' | 'throw'): Promise<void> => {
      const source = (function* () {
        yield rounds[0]!;
        if (how === 'throw') throw new Error('source failed');
        yield rounds[1]!;
      })();
      try {
        for await (const c of encodeRounds(source, { cacheSize: 64 * PS, chunkSize: 4096, reuseChunks: true })) {
          expect(c.length).toBeGreaterThan(0);
          if (how === 'break') break;
        }
      } catch (err) {
        expect((err as Error).message).toBe('source failed');
      }
    };
    for (const how of ['done', 'break', 'throw'] as const) {
      const before = engine.allocated;
      await once(how);
      // The cache came back: the kernel holds what it held before.
      expect(engine.allocated, how).toBe(before);
    }
  });

  it('refuses a reuseChunks that is not a boolean, at the call', () => {
    expect(() => encodeRounds([], { reuseChunks: 1 as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.reuseChunks') }));
  });

  it('xbzrle/web: Uint8Array chunks with the bytes of the Node export', async () => {
    const rounds = asRounds(memoryRounds(48, 3, 11, false), 8);
    const node = await collect(encodeRounds(rounds, { cacheSize: 48 * PS, chunkSize: 8192 }));
    let buffers = 0;
    const copies: Uint8Array[] = [];
    for await (const c of webEncodeRounds(rounds, { cacheSize: 48 * PS, chunkSize: 8192, reuseChunks: true })) {
      if (Buffer.isBuffer(c)) buffers++;
      copies.push(copy(c));
    }
    expect(buffers).toBe(0);
    expect(sameBytes(concat(copies), node.bytes)).toBe(true);
  });
});
