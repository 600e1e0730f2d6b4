/**
 * The kernel's memory has one owner: every region taken for a cache arena, a
 * store segment or a kernel's staging area goes back when its owner gives it
 * back, or when the owner is garbage collected without doing so.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { PageKernel } from '../lib/codec/kernel.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { MemoryPageStore, PageCache } from '../lib/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const engine = getEngine();
const shared = engine !== null && engine.shared;

/** Collects garbage until `done()` or a second has passed (finalizers run some time after a collection). */
async function collectUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !done(); i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!shared)('kernel memory', () => {
  it('take/give/giveAll account per owner, and a second give is ignored', () => {
    const e = engine!;
    const before = e.allocated;
    const owner = {};
    const a = e.take(owner, 8192, 4096);
    const b = e.take(owner, 100);
    expect(a).toBeGreaterThan(0);
    expect(e.allocated).toBeGreaterThanOrEqual(before + 8192 + 128);
    e.give(owner, a);
    e.give(owner, a); // nothing: already given back
    e.give({}, b); // nothing: another owner's region
    expect(e.allocated).toBe(before + 128);
    e.giveAll(owner);
    expect(e.allocated).toBe(before);
  });

  it('a cache, a store and a kernel dropped without dispose() give their memory back when collected', async () => {
    const e = engine!;
    gc();
    const before = e.allocated;
    (() => {
      const cache = new PageCache({ size: 4 << 20 });
      const store = new MemoryPageStore();
      store.put('ram', 0, new Uint8Array(4096).fill(1));
      const kernel = new PageKernel(4096);
      expect(cache.arenaPtr).toBeGreaterThan(0);
      expect(kernel.engine).not.toBeNull();
    })();
    expect(e.allocated).toBeGreaterThan(before + (4 << 20));
    await collectUntil(() => e.allocated === before);
    expect(e.allocated).toBe(before);
  });

  it('a resized cache holds only its new arena', () => {
    const e = engine!;
    const before = e.allocated;
    const cache = new PageCache({ size: 1 << 20 });
    cache.resize(4 << 20);
    expect(e.allocated - before).toBe(4 << 20);
    cache.dispose();
    expect(e.allocated).toBe(before);
  });
});
