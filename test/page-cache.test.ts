import { describe, expect, it } from 'vitest';
import { CACHED_PAGE_LIFETIME, PageCache } from '../lib/index.js';

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
