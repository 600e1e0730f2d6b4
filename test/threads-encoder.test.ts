import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { encodeRounds, PageCache, readQemuMigration, XbzrleEncodeStream, type PageRecord, type RoundItem } from '../lib/index.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat } from './helpers/bytes.js';
import { memoryRounds as rounds } from './helpers/rounds.js';
import { gunzipFile } from './helpers/fixtures.js';
import { setPoolStartMs } from '../lib/core/encoder.js';

// Encoders here start their worker pool with their second group of pages: by default it waits for
// ~50 ms of pages sent (encoder-pool-starts-with-work), more than these inputs give.
beforeAll(() => setPoolStartMs(0));
afterAll(() => setPoolStartMs(undefined));

const PS = 4096;
const engine = getEngine();
const poolAvailable = getKernelPool(engine, 2) !== null;

afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});


async function encode(items: RoundItem[], threads: number, cacheSize: number, resizeTo?: number): Promise<{ bytes: Uint8Array; stats: unknown }> {
  if (resizeTo === undefined) {
    const gen = encodeRounds(items, { threads, cacheSize });
    const chunks: Uint8Array[] = [];
    for await (const c of gen) chunks.push(c);
    const s = gen.stats.toJSON();
    return { bytes: concat(chunks), stats: { ...s, ram: { ...s.ram, 'pages-per-second': 0 } } };
  }
  // A resize half way through, on a shared cache.
  const cache = new PageCache({ size: cacheSize });
  const enc = new XbzrleEncodeStream({ threads, cache });
  const chunks: Uint8Array[] = [];
  enc.on('data', (c: Uint8Array) => chunks.push(c));
  const done = new Promise((resolve) => enc.on('end', resolve));
  items.forEach((item, i) => {
    if (i === Math.floor(items.length / 2)) enc.setCacheSize(resizeTo);
    if (item === 'sync' || item === 'final') enc.sync({ final: item === 'final' });
    else if (Array.isArray(item)) {
      for (const r of item) enc.write(r);
      enc.sync();
    } else enc.write(item);
  });
  enc.end();
  await done;
  const s = enc.stats.toJSON();
  cache.dispose();
  return { bytes: concat(chunks), stats: { ...s, ram: { ...s.ram, 'pages-per-second': 0 } } };
}

describe.skipIf(!poolAvailable)('encoder on several threads', () => {
  it('writes the bytes and statistics of one thread, for any rounds, cache size, final stage and resize', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1400 }),
        fc.integer({ min: 1, max: 4 }),
        fc.nat(),
        fc.constantFrom(16 * PS, 256 * PS, 1 << 22, 1 << 24),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(2, 3),
        fc.option(fc.constantFrom(8 * PS, 1 << 23)),
        fc.integer({ min: 1, max: 700 }),
        async (pages, count, seed, cacheSize, inKernel, final, threads, resizeTo, recordPages) => {
          const images = rounds(pages, count, seed, inKernel);
          const items: RoundItem[] = [];
          images.forEach((img, r) => {
            // Records of recordPages pages, the last round maybe in the final stage.
            if (final && r === images.length - 1) items.push('final');
            for (let p = 0; p < pages; p += recordPages) {
              const n = Math.min(recordPages, pages - p);
              items.push({ block: 'pc.ram', offset: p * PS, data: img.subarray(p * PS, (p + n) * PS) });
            }
            items.push('sync');
          });
          const one = await encode(items, 1, cacheSize, resizeTo ?? undefined);
          const many = await encode(items, threads, cacheSize, resizeTo ?? undefined);
          expect(Buffer.compare(many.bytes, one.bytes)).toBe(0);
          if (pages >= 64) expect((one.stats as { ram: { normal: number } }).ram.normal).toBeGreaterThan(0); // the rounds are not all zero
          expect(many.stats).toEqual(one.stats);
        },
      ),
      { numRuns: 16 },
    );
  });

  it('re-sends the pages of real QEMU migrations (every round, in QEMU\'s order) as one thread does', async () => {
    // QEMU 10.0's capture, through a cache of 1 MiB (evictions, the hot-page rule) and of 64 MiB.
    for (const [name, cacheSize] of [['qemu-10.0/edge-c32m', 1 << 20], ['qemu-10.0/edge-c32m', 1 << 26]] as const) {
      const mig = gunzipFile(fileURLToPath(new URL(`./fixtures/${name}.mig.gz`, import.meta.url)));
      // The pages QEMU sent, as they were after each record, grouped into runs of consecutive pages.
      const items: RoundItem[] = [];
      let run: { block: string; offset: number; pages: Uint8Array[] } | null = null;
      const flush = (): void => {
        if (run !== null) items.push({ block: run.block, offset: run.offset, data: concat(run.pages) } satisfies PageRecord);
        run = null;
      };
      await readQemuMigration(mig, {
        onPage: (block, offset, _kind, page, fill) => {
          const copy = page === null ? new Uint8Array(PS).fill(fill) : page.slice();
          if (run !== null && run.block === block && run.offset + run.pages.length * PS === offset && run.pages.length < 600) run.pages.push(copy);
          else {
            flush();
            run = { block, offset, pages: [copy] };
          }
        },
        onRecord: (rec) => {
          if (rec.kind === 'eos') {
            flush();
            items.push('sync');
          }
        },
      });
      flush();
      expect(items.filter((i) => i === 'sync').length).toBeGreaterThan(2);
      const one = await encode(items, 1, cacheSize);
      const two = await encode(items, 2, cacheSize);
      expect(Buffer.compare(two.bytes, one.bytes)).toBe(0);
      expect(two.stats).toEqual(one.stats);
    }
  });
});
