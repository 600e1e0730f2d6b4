/**
 * A `FilePageStore` whose blocks were declared sets up no more cache than
 * they need (at least 16 MiB): a decode of a small image allocated the whole
 * 64 MiB default, and V8 answered that much new memory with collections
 * (external memory pressure) in a run of a few milliseconds. Without a
 * declaration, or for declared blocks larger than the cache, the cache is
 * `cacheSize`. The pages read back are the pages written either way.
 */
import { describe, expect, it } from 'vitest';
import { FilePageStore } from '../lib/index.js';
import { tempDirEach } from './helpers/temp-dir.js';

let dir = '';
tempDirEach('xbzrle-small-cache-', (d) => (dir = d));
const PS = 4096;
const MIB = 1 << 20;

/** Bytes of ArrayBuffers the first page written makes `store` allocate (its cache; the store stays open, so nothing of it is freed meanwhile). */
async function cacheBytes(store: FilePageStore, declared: number | null): Promise<number> {
  if (declared !== null) await store.declare([{ id: 'ram', length: declared }]);
  const page = new Uint8Array(PS).fill(7);
  const before = process.memoryUsage().arrayBuffers;
  await store.put('ram', PS, page);
  const grew = process.memoryUsage().arrayBuffers - before;
  const back = new Uint8Array(PS);
  await store.get('ram', PS, back);
  expect(Buffer.compare(back, page)).toBe(0);
  return grew;
}

describe('FilePageStore cache size', () => {
  it('is what the declared blocks need, at least 16 MiB; else cacheSize', async () => {
    const stores = ['small', 'big', 'undeclared'].map((name) => new FilePageStore({ dir: `${dir}/${name}`, cacheSize: 64 * MIB }));
    try {
      const small = await cacheBytes(stores[0]!, 8 * PS);
      expect(small).toBeGreaterThanOrEqual(16 * MIB);
      expect(small).toBeLessThan(17 * MIB);
      // (Bounds with room: a collection between the two readings may free other buffers.)
      const big = await cacheBytes(stores[1]!, 1 << 30);
      expect(big).toBeGreaterThan(48 * MIB);
      const undeclared = await cacheBytes(stores[2]!, null);
      expect(undeclared).toBeGreaterThan(48 * MIB);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
