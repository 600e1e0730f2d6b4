import { afterAll, describe, expect, it } from 'vitest';
import { EncoderCore } from '../lib/core/encoder.js';
import { PageCache } from '../lib/index.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat, rng } from './helpers/bytes.js';

// Kernel memory past 2 GiB (a 2 GiB cache lives there, untouched): addresses
// of 2^31 and more must not wrap to negative numbers on their way through
// the encoder's batches (a review found records read from the end of memory).

const engine = getEngine();
const poolAvailable = engine !== null && getKernelPool(engine, 2) !== null;
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});

function image(pages: number, seed: number): Uint8Array {
  const r = rng(seed);
  const img = new Uint8Array(pages * 4096);
  for (let p = 0; p < pages; p++) {
    if (p % 5 === 0) continue; // zero pages
    for (let i = 0; i < 4096; i += 64) img[p * 4096 + i] = (r() * 256) | 0;
  }
  return img;
}

function encode(images: Uint8Array[], threads: number): { bytes: Uint8Array; core: EncoderCore } {
  const core = new EncoderCore({ threads, cacheSize: 1 << 20, blocks: [{ id: 'ram', length: images[0]!.length }] });
  const chunks: Uint8Array[] = [];
  const drain = (): void => {
    for (let c = core.next(); c !== undefined; c = core.next()) chunks.push(c.slice());
  };
  drain();
  for (const img of images) {
    core.feed({ block: 'ram', offset: 0, data: img });
    drain();
    core.sync(false);
    drain();
  }
  core.end();
  drain();
  return { bytes: concat(chunks), core };
}

describe.skipIf(!poolAvailable)('encoder batches in kernel memory past 2 GiB', () => {
  it('writes the bytes of one thread', () => {
    const ballast = new PageCache({ size: 2 ** 31 }); // reserved, never touched
    try {
      const a = image(200, 1);
      const b = a.slice();
      for (let p = 0; p < 200; p += 3) b[p * 4096 + 7] = b[p * 4096 + 7]! ^ 0x5a; // small edits: XBZRLE records
      const one = encode([a, b], 1);
      one.core.dispose(true);
      const two = encode([a, b], 2);
      // The test means something only if the batch's areas are past 2 GiB.
      const batch = (two.core as unknown as { runs: { prevs: number; results: number; records: number } | null }).runs;
      two.core.dispose(true);
      expect(Math.min(batch?.prevs ?? 0, batch?.results ?? 0, batch?.records ?? 0)).toBeGreaterThanOrEqual(2 ** 31);
      expect(Buffer.from(two.bytes).equals(Buffer.from(one.bytes))).toBe(true);
    } finally {
      ballast.dispose();
    }
  });
});
