import { describe, expect, it } from 'vitest';
import { allocPages, CACHED_PAGE_LIFETIME, freePages, MemoryPageStore, PageCache } from '../lib/index.js';
import { decodeChunks, encodeRounds } from './helpers/streams.js';
import { PageKernel } from '../lib/codec/kernel.js';

const PS = 4096;
const page = (v: number, size = PS): Uint8Array => new Uint8Array(size).fill(v);

describe('PageCache sizing', () => {
  it('uses a power-of-two slot count, rounding odd sizes down and reporting the real size', () => {
    expect(new PageCache({ size: 8 << 20 }).slots).toBe(2048);
    const odd = new PageCache({ size: 3 * PS + 100 });
    expect(odd.slots).toBe(2);
    expect(odd.size).toBe(2 * PS);
    expect(new PageCache({ size: PS }).slots).toBe(1);
    expect(new PageCache({ size: 64 << 20 }).slots).toBe(16384);
    expect(new PageCache({ size: 1 << 20, pageSize: 1024 }).slots).toBe(1024);
  });

  it('throws RangeError for a size below one page', () => {
    expect(() => new PageCache({ size: PS - 1 })).toThrow(RangeError);
    expect(() => new PageCache({ size: 0 })).toThrow(RangeError);
    expect(() => new PageCache({ size: 4096, pageSize: 3000 })).toThrow(RangeError);
  });

  it('holds its pages in one arena of exactly size bytes', () => {
    const cache = new PageCache({ size: 1 << 20 });
    expect(cache.arena.byteLength).toBe(1 << 20);
    const arena = cache.arena;
    for (let i = 0; i < 1000; i++) cache.insert(i * PS, page(i & 0xff));
    expect(cache.arena).toBe(arena); // no per-page allocation, no growth
  });
});

describe('PageCache index and lookup', () => {
  it('maps addr to (addr / pageSize) & (slots - 1)', () => {
    const cache = new PageCache({ size: 8 << 20 });
    expect(cache.slotOf(0)).toBe(0);
    expect(cache.slotOf(0x800000)).toBe(0); // 8 MiB apart: same slot (spec page-cache.md §8)
    expect(cache.slotOf(0x1400000)).toBe(0x400);
    expect(cache.slotOf(0x1c00000)).toBe(0x400);
    expect(cache.slotOf(4096 * 2049)).toBe(1);
    expect(cache.slotOf(2 ** 52)).toBe(0);
  });

  it('refuses keys that are not non-negative safe integers', () => {
    const cache = new PageCache({ size: 4 * PS });
    for (const bad of [NaN, -PS, 2 ** 53, 1.5]) {
      expect(() => cache.insert(bad, page(1))).toThrow(RangeError);
      expect(() => cache.lookup(bad)).toThrow(RangeError);
    }
    expect(cache.count).toBe(0);
  });

  it('hits only the same address, counts hits and misses, and returns a view of the copy', () => {
    const cache = new PageCache({ size: 4 * PS });
    const src = page(7);
    expect(cache.lookup(PS)).toBe(-1);
    expect(cache.insert(PS, src)).toBe(true);
    src.fill(9); // the cache holds a copy
    const slot = cache.lookup(PS);
    expect(slot).toBe(1);
    expect(cache.peek(PS)![0]).toBe(7);
    expect(cache.lookup(5 * PS)).toBe(-1); // same slot, other page
    expect(cache.hits).toBe(1);
    expect(cache.misses).toBe(2);
  });
});

describe('PageCache hot-page rule (CACHED_PAGE_LIFETIME = 2)', () => {
  it('refuses to evict a different page younger than 2 generations', () => {
    expect(CACHED_PAGE_LIFETIME).toBe(2);
    const cache = new PageCache({ size: PS }); // one slot: every page collides
    expect(cache.insert(0, page(1), 5)).toBe(true);
    expect(cache.insert(PS, page(2), 5)).toBe(false);
    expect(cache.insert(PS, page(2), 6)).toBe(false);
    expect(cache.refused).toBe(2);
    expect(cache.insert(PS, page(2), 7)).toBe(true);
    expect(cache.has(0)).toBe(false);
    expect(cache.peek(PS)![0]).toBe(2);
  });

  it('lets a hit refresh the age, so a page hit every generation keeps its slot', () => {
    const cache = new PageCache({ size: PS });
    cache.insert(0, page(1), 1);
    for (let g = 2; g < 10; g++) {
      expect(cache.lookup(0, g)).toBe(0);
      expect(cache.insert(PS, page(2), g)).toBe(false);
    }
    expect(cache.insert(PS, page(2), 11)).toBe(true);
  });

  it('always lets the same address overwrite its entry, and an empty slot accept', () => {
    const cache = new PageCache({ size: PS });
    cache.insert(0, page(1), 3);
    expect(cache.insert(0, page(4), 3)).toBe(true);
    expect(cache.peek(0)![0]).toBe(4);
    cache.invalidate(0);
    expect(cache.insert(PS, page(5), 3)).toBe(true);
  });

  it('clear() drops entries but keeps block bases; reset() forgets both', () => {
    const cache = new PageCache({ size: 4 * PS });
    cache.declareBlocks([{ id: 'a', length: PS }, { id: 'b', length: PS }]);
    cache.insert(PS, page(1));
    cache.clear();
    expect(cache.count).toBe(0);
    expect(cache.blockBase('b')).toBe(PS);
    cache.reset();
    expect(cache.blockBase('b', PS)).toBe(0);
  });

  it('uses the cache generation by default and advances it with nextGeneration()', () => {
    const cache = new PageCache({ size: PS });
    cache.insert(0, page(1));
    cache.nextGeneration();
    expect(cache.insertZero(PS)).toBe(false);
    cache.nextGeneration();
    expect(cache.insertZero(PS)).toBe(true);
    expect(cache.peek(PS)!.every((v) => v === 0)).toBe(true);
  });
});

describe('PageCache resize', () => {
  it('keeps entries when growing', () => {
    const cache = new PageCache({ size: 4 * PS });
    for (let i = 0; i < 4; i++) cache.insert(i * PS, page(i + 1));
    expect(cache.resize(16 * PS)).toBe(16 * PS);
    expect(cache.count).toBe(4);
    for (let i = 0; i < 4; i++) expect(cache.peek(i * PS)![0]).toBe(i + 1);
  });

  it('keeps the younger entry when two collide on shrink, the first placed on a tie', () => {
    const cache = new PageCache({ size: 4 * PS });
    cache.insert(0 * PS, page(1), 3); // -> new slot 0
    cache.insert(1 * PS, page(2), 1); // -> new slot 1
    cache.insert(2 * PS, page(3), 2); // -> new slot 0, older than page 0: dropped
    cache.insert(3 * PS, page(4), 1); // -> new slot 1, same age as page 1: first placed wins
    cache.resize(2 * PS);
    expect(cache.slots).toBe(2);
    expect(cache.peek(0)![0]).toBe(1);
    expect(cache.peek(PS)![0]).toBe(2);
    expect(cache.has(2 * PS)).toBe(false);
    expect(cache.has(3 * PS)).toBe(false);
    expect(cache.count).toBe(2);
    const younger = new PageCache({ size: 4 * PS });
    younger.insert(0, page(1), 1);
    younger.insert(2 * PS, page(3), 2);
    younger.resize(2 * PS);
    expect(younger.peek(2 * PS)![0]).toBe(3);
  });

  it('rounds the new size down and refuses less than a page', () => {
    const cache = new PageCache({ size: 4 * PS });
    expect(cache.resize(5 * PS + 1)).toBe(4 * PS);
    expect(() => cache.resize(100)).toThrow(RangeError);
  });
});

describe('PageCache block bases', () => {
  it('places declared blocks one after another, never overlapping', () => {
    const cache = new PageCache({ size: 16 * PS });
    cache.declareBlocks([
      { id: 'a', length: 8 * PS },
      { id: 'b', length: 3 * PS },
    ]);
    expect(cache.blockBase('a')).toBe(0);
    expect(cache.blockBase('b')).toBe(8 * PS);
    expect(cache.blockBase('c', PS)).toBe(11 * PS);
  });

  it('gives blocks seen without a length their own large span', () => {
    const cache = new PageCache({ size: 16 * PS });
    const x = cache.block('x');
    const y = cache.block('y');
    expect(y.base - x.base).toBe(x.span);
    expect(x.base).toBeGreaterThanOrEqual(2 ** 47);
    expect(cache.blockBase('x')).toBe(x.base);
  });

  it('moves a declared block that outgrows its room and drops its old entries', () => {
    const cache = new PageCache({ size: 64 * PS });
    cache.declareBlocks([
      { id: 'a', length: 2 * PS },
      { id: 'b', length: 2 * PS },
    ]);
    cache.insert(cache.blockBase('a') + PS, page(1));
    cache.block('a', 4 * PS);
    expect(cache.blockBase('a')).toBe(4 * PS);
    expect(cache.count).toBe(0);
    cache.block('a', 6 * PS); // last block: grows in place
    expect(cache.blockBase('a')).toBe(4 * PS);
  });
});

describe('PageCache block ranges', () => {
  it('blockRanges lists the blocks in the order they were given bases, without overlap', () => {
    const cache = new PageCache({ size: 1 << 20 });
    cache.declareBlocks([
      { id: 'pc.ram', length: 1 << 20 },
      { id: 'vga', length: 1 << 16 },
    ]);
    const ranges = cache.blockRanges();
    expect(ranges.map((r) => r.id)).toEqual(['pc.ram', 'vga']);
    expect(ranges[0]!.base + ranges[0]!.span).toBeLessThanOrEqual(ranges[1]!.base);
    expect(ranges[1]!.span).toBeGreaterThanOrEqual(1 << 16);
    cache.dispose();
  });
});

describe('PageCache zero slots', () => {
  it('a zero page cached over any earlier content reads back as zeros (insert, resize, kernel step)', () => {
    const ps = 4096;
    const cache = new PageCache({ size: 16 * ps });
    const page = new Uint8Array(ps).fill(7);
    // Fresh slots: zero without a write.
    expect(cache.insertZero(0)).toBe(true);
    expect(cache.peek(0)!.every((b) => b === 0)).toBe(true);
    // Written by insert, then zero.
    cache.insert(ps, page);
    expect(cache.insertZero(ps)).toBe(true);
    expect(cache.peek(ps)!.every((b) => b === 0)).toBe(true);
    // Written, moved by a resize, then zero.
    cache.insert(2 * ps, page);
    cache.resize(32 * ps);
    expect(cache.peek(2 * ps)![0]).toBe(7);
    cache.insertZero(2 * ps);
    expect(cache.peek(2 * ps)!.every((b) => b === 0)).toBe(true);
    // Written by the kernel (a delta applied to the cached copy), then zero.
    cache.insert(3 * ps, page);
    const kernel = new PageKernel(ps);
    const next = page.slice();
    next[100] = 9;
    const slot = cache.lookup(3 * ps);
    expect(kernel.step(cache, slot, next, 0, true)).toBeGreaterThan(0);
    expect(cache.peek(3 * ps)![100]).toBe(9);
    cache.insertZero(3 * ps);
    expect(cache.peek(3 * ps)!.every((b) => b === 0)).toBe(true);
    // And a slot reused by another address after holding a page.
    cache.insert(4 * ps, page);
    cache.invalidate(4 * ps);
    cache.insertZero(4 * ps + 32 * ps); // same slot (32 slots)
    expect(cache.peek(4 * ps + 32 * ps)!.every((b) => b === 0)).toBe(true);
    kernel.dispose();
    cache.dispose();
  });
});

describe('PageCache zero slots through the encoder', () => {
  it('content, delta, zero, near-delta content, zero, near-delta content on the same pages (allocPages input, kernel steps) decode right', async () => {
    const ps = 4096;
    const n = 8;
    const rounds: Uint8Array[] = [];
    const a = new Uint8Array(n * ps).map((_, i) => (i * 31 + 7) & 0xff);
    const b = a.slice();
    for (let p = 0; p < n; p++) b[p * ps + 5]! ^= 0x40;
    const z = new Uint8Array(n * ps);
    // Round 4 is round 2 plus a byte: a cache still holding round 2 (a zero page cached
    // without clearing the slot) would send a small delta that turns the receiver's zero
    // page into garbage; a right one compares with zeros, overflows and sends PAGEs.
    const c = b.slice();
    for (let p = 0; p < n; p++) c[p * ps + 9]! ^= 0x11;
    // Rounds 5 and 6 repeat the trick after the kernel copied round 4 into the slot.
    const d = c.slice();
    for (let p = 0; p < n; p++) d[p * ps + 13]! ^= 0x22;
    rounds.push(a, b, z, c, z, d);
    const inputs = rounds.map((r) => {
      const buf = allocPages(n, ps);
      buf.set(r);
      return buf;
    });
    const { chunks, enc } = await encodeRounds(inputs.map((data) => [{ block: 'ram', offset: 0, data }]), { blocks: [{ id: 'ram', length: n * ps }], cacheSize: n * ps });
    expect(enc.stats.records.XBZRLE).toBe(n); // round 2 as deltas
    expect(enc.stats.overflow).toBe(2 * n); // rounds 4 and 6 against the cached zero pages
    const store = new MemoryPageStore();
    await decodeChunks(chunks, { store });
    expect(Buffer.from(store.read('ram')).equals(Buffer.from(d))).toBe(true);
    for (const buf of inputs) freePages(buf);
  });
});
