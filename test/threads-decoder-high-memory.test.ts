import { afterAll, describe, expect, it } from 'vitest';
import { encodeRounds, MemoryPageStore, RamRecordParser, XbzrleDecodeStream, XbzrleError } from '../lib/index.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat, rng } from './helpers/bytes.js';

// The threaded decoder with its staging areas and the store's pages in kernel
// memory past 2 GiB (2 GiB reserved first, never touched): the job words hold
// those addresses as negative numbers, which must not reach anything as such
// (a failed delta's reason is read again from its staged bytes).

const PS = 4096;
const engine = getEngine();
const poolAvailable = engine !== null && getKernelPool(engine, 2) !== null;
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});

async function decode(bytes: Uint8Array, threads: number): Promise<{ image: Uint8Array | null; error: { code: string; offset: number | undefined; message: string } | null; staging: number }> {
  const store = new MemoryPageStore();
  const dec = new XbzrleDecodeStream({ store, emitPages: false, threads });
  // (The test means something only if the staging areas are past 2 GiB.)
  const batches = (dec as unknown as { core: { loader: { parallel: { batches: { staging: number }[] } | null } } }).core.loader.parallel?.batches;
  const staging = batches === undefined ? 0 : Math.min(...batches.map((b) => b.staging));
  const done = new Promise<void>((resolve, reject) => {
    dec.on('finish', resolve);
    dec.on('error', reject);
  });
  dec.end(bytes);
  let error = null;
  try {
    await done;
  } catch (err) {
    if (!(err instanceof XbzrleError)) throw err;
    error = { code: err.code, offset: err.offset, message: err.message };
  }
  const image = error === null ? store.read('ram') : null;
  dec.destroy();
  store.dispose();
  return { image, error, staging };
}

describe.skipIf(!poolAvailable)('threaded decoder in kernel memory past 2 GiB', () => {
  it('rebuilds the image, and fails a corrupt delta with the offset and reason of one thread', async () => {
    const ballast = {};
    const at = engine!.take(ballast, 2 ** 31, 4096); // reserved, never touched
    expect(at).toBeGreaterThan(0);
    try {
      const rand = rng(4);
      const a = new Uint8Array(600 * PS);
      for (let i = 0; i < a.length; i += 64) a[i] = (rand() * 256) | 0;
      const b = a.slice();
      for (let e = 0; e < 30_000; e++) b[Math.floor(rand() * b.length)] = (rand() * 256) | 0;
      const out: Uint8Array[] = [];
      for await (const c of encodeRounds([[{ block: 'ram', offset: 0, data: a }], [{ block: 'ram', offset: 0, data: b }]], { cacheSize: 1 << 24 })) out.push(c);
      const bytes = concat(out);
      const good = await decode(bytes, 2);
      expect(good.staging).toBeGreaterThanOrEqual(2 ** 31);
      expect(good.error).toBeNull();
      expect(Buffer.compare(good.image!, b)).toBe(0);
      // The payloads of round 2's deltas, found by parsing the stream in one piece.
      const parser = new RamRecordParser({ pageSize: PS });
      parser.push(bytes);
      const deltas: number[] = [];
      for (let rec = parser.next(); rec !== null; rec = parser.next()) if (rec.kind === 'xbzrle') deltas.push(rec.srcOffset);
      expect(deltas.length).toBeGreaterThan(500);
      // A zero-run length of more than two bytes at the start of a delta.
      let failures = 0;
      for (let t = 0; t < 4; t++) {
        const bad = bytes.slice();
        const pos = deltas[Math.floor(deltas.length * (0.2 + 0.75 * rand()))]!;
        bad[pos] = 0xff;
        bad[pos + 1] = 0xff;
        const one = await decode(bad, 1);
        const two = await decode(bad, 2);
        expect(two.error).toEqual(one.error);
        if (one.error?.code === 'ERR_XBZRLE_CORRUPT') failures++;
      }
      expect(failures).toBe(4);
    } finally {
      engine!.give(ballast, at);
    }
  });
});
