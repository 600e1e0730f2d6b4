import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { allocPages, encodeRounds, freePages, MemoryPageStore, XbzrleDecodeStream, XbzrleError } from '../lib/index.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat, rng, split } from './helpers/bytes.js';

const PS = 4096;
const engine = getEngine();
const poolAvailable = getKernelPool(engine, 2) !== null;
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});

/** Decodes `bytes` (split as given) into a new store; the store's image, the stats, or the error. */
async function decode(chunks: Uint8Array[], threads: number, pageSize = PS): Promise<{ image: Uint8Array | null; stats: unknown; error: { code: string; offset: number | undefined } | null }> {
  const pad = allocPages(1); // the store's 64 KiB segments then start off an 8 or 16 KiB boundary
  const store = new MemoryPageStore();
  freePages(pad);
  const dec = new XbzrleDecodeStream({ store, emitPages: false, threads, pageSize });
  const done = new Promise<void>((resolve, reject) => {
    dec.on('finish', resolve);
    dec.on('error', reject);
  });
  for (const c of chunks) dec.write(c);
  dec.end();
  let error = null;
  try {
    await done;
  } catch (err) {
    if (!(err instanceof XbzrleError)) throw err;
    error = { code: err.code, offset: err.offset };
  }
  const image = error === null && store.has('ram') ? store.read('ram') : null;
  const s = dec.stats.toJSON();
  store.dispose();
  return { image, stats: error === null ? { ...s, ram: { ...s.ram, 'pages-per-second': 0 } } : null, error };
}

/** A stream of rounds of a changing image: zero pages, small edits, rewrites. */
async function stream(pages: number, rounds: number, seed: number, ps = PS): Promise<Uint8Array> {
  const float = rng(seed);
  const rand = (): number => (float() * 4294967296) >>> 0;
  const items = [];
  let img = new Uint8Array(pages * ps);
  for (let r = 0; r < rounds; r++) {
    img = img.slice();
    for (let p = 0; p < pages; p++) {
      const k = rand() % 8;
      if (k === 0) img.fill(0, p * ps, (p + 1) * ps);
      else if (k === 1) for (let i = 0; i < ps; i += 4) img[p * ps + i] = rand() & 0xff;
      else if (k < 5) for (let e = 0; e < 1 + (rand() % 40); e++) img[p * ps + (rand() % ps)] = rand() & 0xff;
    }
    items.push([{ block: 'ram', offset: 0, data: img }]);
  }
  const out: Uint8Array[] = [];
  for await (const c of encodeRounds(items, { cacheSize: 1 << 24, pageSize: ps })) out.push(c);
  return concat(out);
}

describe.skipIf(!poolAvailable)('decoder on several threads', () => {
  it('rebuilds the image and counts as one thread, the input split anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 4 }), fc.nat(), fc.constantFrom('whole', 'random') as fc.Arbitrary<'whole' | 'random'>, fc.constantFrom(1024, 4096, 8192, 16384), async (pages, rounds, seed, how, ps) => {
        const bytes = await stream(Math.ceil((pages * PS) / ps), rounds, seed, ps);
        const chunks = split(bytes, how, seed, 300_000);
        const one = await decode(chunks, 1, ps);
        const two = await decode(chunks, 2, ps);
        expect(one.error).toBeNull();
        expect(two.error).toBeNull();
        expect(Buffer.compare(two.image!, one.image!)).toBe(0);
        expect(two.stats).toEqual(one.stats);
      }),
      { numRuns: 12 },
    );
  });

  it('fails a corrupt delta with the error and offset of one thread', async () => {
    const bytes = await stream(1500, 3, 7);
    // Corrupt bytes inside the later rounds (deltas mostly): whatever fails, it fails the same way.
    const rand = rng(3);
    for (let t = 0; t < 12; t++) {
      const bad = bytes.slice();
      const at = Math.floor(bytes.length / 3 + rand() * (bytes.length * 2 / 3 - 1));
      bad[at] = bad[at]! ^ 0x5a;
      const one = await decode([bad], 1);
      const two = await decode([bad], 2);
      expect(two.error).toEqual(one.error);
      if (one.error === null) expect(Buffer.compare(two.image!, one.image!)).toBe(0);
    }
  });
});
