import { argRangeError, argTypeError } from '../errors.js';
import { isZeroRange } from '../codec/zero.js';
import { getEngine, type WasmEngine } from '../codec/wasm/engine.js';
import { fillInto } from '../codec/copy.js';

/**
 * QEMU's `CACHED_PAGE_LIFETIME`: a different page may evict an entry only
 * once the entry is this many generations old (spec: page-cache.md §3).
 */
export const CACHED_PAGE_LIFETIME = 2;

/** Marks PageCache objects across copies of the package; its value is the layout version. */
const BRAND = Symbol.for('xbzrle.PageCache');
/** Version of PageCache's internals that other copies use (bump on any change to them). */
const LAYOUT = 2;

/** Default cache size: 64 MiB, QEMU's `xbzrle-cache-size` default. */
export const DEFAULT_CACHE_SIZE = 64 * 1024 * 1024;

/** Largest arena a cache may allocate (the largest `Uint8Array` Node 20 allows). */
export const MAX_CACHE_SIZE = 2 ** 32;

/** Keys of undeclared blocks start here; declared blocks live below. */
const UNDECLARED_ORIGIN = 2 ** 47;
/** Room reserved for each block seen without a declared length. */
export const UNDECLARED_BLOCK_SPAN = 2 ** 40;
const EMPTY = -1;

/** Options of {@link PageCache}. */
export interface PageCacheOptions {
  /** Cache size in bytes; rounded down to a power-of-two number of pages. At least one page. */
  size: number;
  /** Page size in bytes, a power of two. Default 4096. */
  pageSize?: number;
  /**
   * @internal Keep the arena out of the kernel's memory (a plain array, never
   * touched): for an encoder whose driver holds the bytes of the copies
   * (`EncoderCore.feedRound`), where only the bookkeeping is used.
   */
  plainArena?: boolean;
}

/** A RAM block as the cache keys it. */
export interface BlockRange {
  /** Block name (QEMU's RAMBlock idstr). */
  readonly id: string;
  /** First cache key of the block (QEMU's `ram_addr_t` of offset 0). */
  readonly base: number;
  /** Bytes reserved for the block's keys. */
  readonly span: number;
  /** True when the length came from a declaration rather than first use. */
  readonly declared: boolean;
}

/**
 * QEMU's XBZRLE page cache: direct-mapped, a power-of-two number of slots,
 * `slot = (addr / pageSize) & (slots - 1)`, with the hot-page rule of QEMU
 * 2.3+ (an entry carries the dirty-sync generation of its last insert or hit;
 * a *different* page may not evict it until it is
 * {@link CACHED_PAGE_LIFETIME} generations old).
 *
 * Page copies live in one arena allocated up front, so the memory used is
 * `size` plus 16 bytes of bookkeeping per slot, whatever the traffic.
 *
 * Keys are QEMU-style `ram_addr_t` values: a block base plus the page offset.
 * The cache hands out block bases ({@link PageCache.blockBase}) so that
 * every stream sharing it keys the same block the same way and no two blocks
 * overlap.
 *
 * @example
 * ```ts
 * const cache = new PageCache({ size: 8 << 20 })   // 2048 slots of 4 KiB
 * const enc = new XbzrleEncodeStream({ cache })
 * ```
 */
export class PageCache {
  /** Page size in bytes. */
  readonly pageSize: number;
  /** Current dirty-sync generation; encoders advance it on every `sync()`. */
  generation = 0;
  /** Lookups that found their page. */
  hits = 0;
  /** Lookups that did not (empty slot or another page). */
  misses = 0;
  /** Inserts refused because the slot held a different, fresh page. */
  refused = 0;

  /** @internal The page copies, slot `s` at `s * pageSize`; in the SIMD kernel's memory when it can be. */
  arena: Uint8Array;
  /** @internal Address of the arena in the kernel's memory, or -1 (a plain array). */
  arenaPtr = -1;
  /** @internal The engine whose memory holds the arena (when `arenaPtr >= 0`). */
  arenaEngine: WasmEngine | null = null;

  /**
   * True when `value` is a PageCache, also one made by another copy of this
   * package in the same process (the Node and the Web bundles are separate).
   */
  static isPageCache(value: unknown): value is PageCache {
    return value instanceof PageCache || (typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === LAYOUT);
  }

  /** @internal */
  get [BRAND](): number {
    return LAYOUT;
  }
  private keys: Float64Array;
  private ages: Float64Array;
  /**
   * 1 for a slot that may hold non-zero bytes, 0 for one known to be all zero:
   * fresh kernel memory is zero and never touched to make it so, reused memory
   * is not cleared (its slots start at 1: no slot's bytes are read before a
   * page is written there), and caching a zero page in a known-zero slot then
   * costs nothing — no zero test that would fault untouched memory in. Every
   * write into a slot sets its flag.
   */
  private written: Uint8Array;
  /** Bytes at the start of the arena just allocated that may hold old data (see {@link PageCache.allocArena}). */
  private arenaDirty = 0;
  private readonly plainArena: boolean;
  private mask: number;
  private used = 0;
  private readonly blocks = new Map<string, BlockRange>();
  private declaredEnd = 0;
  private undeclaredCount = 0;

  constructor(options: PageCacheOptions) {
    if (options === null || typeof options !== 'object') throw argTypeError('options', 'an object', options);
    const pageSize = options.pageSize ?? 4096;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1 || (pageSize & (pageSize - 1)) !== 0 || pageSize > 2 ** 24) {
      throw argRangeError('pageSize', 'a power of two from 1 to 16 MiB', pageSize);
    }
    this.pageSize = pageSize;
    const slots = slotCountFor(options.size, pageSize);
    this.mask = slots - 1;
    this.plainArena = options.plainArena === true;
    this.arena = this.allocArena(slots * pageSize);
    this.keys = new Float64Array(slots).fill(EMPTY);
    this.ages = new Float64Array(slots);
    this.written = new Uint8Array(slots).fill(1, 0, Math.ceil(this.arenaDirty / pageSize));
  }

  /** Real cache size in bytes (slots × page size). */
  get size(): number {
    return this.arena.length;
  }

  /** Number of slots (a power of two). */
  get slots(): number {
    return this.mask + 1;
  }

  /** Number of slots holding a page. */
  get count(): number {
    return this.used;
  }

  /** Slot index of a key: `(addr / pageSize) & (slots - 1)`. */
  slotOf(addr: number): number {
    return Math.floor(addr / this.pageSize) % (this.mask + 1);
  }

  /**
   * Looks `addr` up. A hit refreshes the entry's generation to `generation`
   * and returns the slot index; a miss returns -1 and changes nothing.
   * Counts a hit or a miss.
   */
  lookup(addr: number, generation: number = this.generation): number {
    const slot = this.slotOf(checkAddr(addr));
    if (this.keys[slot] === addr) {
      this.ages[slot] = generation;
      this.hits++;
      return slot;
    }
    this.misses++;
    return -1;
  }

  /** @internal The slot holding `addr`, or -1. Changes nothing and counts nothing. */
  peekSlot(addr: number): number {
    const slot = this.slotOf(addr);
    return this.keys[slot] === addr ? slot : -1;
  }

  /**
   * @internal {@link PageCache.peekSlot} of `count` consecutive pages from
   * `addr`, into `slots` from index 0 (consecutive pages take consecutive
   * slots: no division per page).
   */
  peekRun(addr: number, count: number, slots: Int32Array): void {
    const keys = this.keys;
    const mask = this.mask;
    const ps = this.pageSize;
    let slot = this.slotOf(addr);
    for (let k = 0; k < count; k++, addr += ps, slot = (slot + 1) & mask) slots[k] = keys[slot] === addr ? slot : -1;
  }

  /**
   * @internal {@link PageCache.account} of the hits among pages `from` to
   * `to` (exclusive) of `slots`, as from {@link PageCache.peekRun}: those
   * whose slot is not -1 and whose `results` entry is at least 0 (an
   * encoder's step that found the page unchanged or made a delta). Returns
   * how many there were.
   */
  accountHits(slots: Int32Array, results: Int32Array, offset: number, from: number, to: number, generation: number = this.generation): number {
    const ages = this.ages;
    let n = 0;
    for (let k = from; k < to; k++) {
      const slot = slots[k]!;
      if (slot >= 0 && results[offset + k]! >= 0) {
        ages[slot] = generation;
        n++;
      }
    }
    this.hits += n;
    return n;
  }

  /**
   * @internal Completes a lookup begun with {@link PageCache.peekSlot}: counts
   * a hit (refreshing the slot's generation) when `slot >= 0`, else a miss.
   */
  account(slot: number, generation: number = this.generation): void {
    if (slot >= 0) {
      this.ages[slot] = generation;
      this.hits++;
    } else {
      this.misses++;
    }
  }

  /** True when `addr` is cached. Changes nothing and counts nothing. */
  has(addr: number): boolean {
    return this.keys[this.slotOf(checkAddr(addr))] === addr;
  }

  /**
   * A copy-free view of the cached page of `addr`, or `undefined`. The view
   * aliases the arena: it changes when the slot is reused, and must not be
   * used after {@link PageCache.resize} or {@link PageCache.dispose} (the
   * memory goes back to the kernel and may hold other data). Copy it
   * (`slice()`) to keep it. Changes nothing and counts nothing.
   */
  peek(addr: number): Uint8Array | undefined {
    const slot = this.slotOf(checkAddr(addr));
    if (this.keys[slot] !== addr) return undefined;
    return this.arena.subarray(slot * this.pageSize, (slot + 1) * this.pageSize);
  }

  /**
   * Stores a copy of `page` (exactly one page) under `addr` at `generation`.
   * Refused (returns false, counted in {@link PageCache.refused}) when the
   * slot holds a different page that is still fresh; replacing the same
   * address always succeeds.
   */
  insert(addr: number, page: Uint8Array, generation: number = this.generation): boolean {
    if (!(page instanceof Uint8Array)) throw argTypeError('page', 'a Uint8Array', page);
    if (page.length !== this.pageSize) throw argRangeError('page.length', `${this.pageSize}`, page.length);
    return this.insertFrom(checkAddr(addr), page, 0, generation);
  }

  /** @internal {@link PageCache.insert} from `src[srcOff]`, without argument checks. */
  insertFrom(addr: number, src: Uint8Array, srcOff: number, generation: number = this.generation): boolean {
    const slot = this.claim(addr, generation);
    if (slot < 0) return false;
    this.store(slot, src, srcOff);
    return true;
  }

  /** @internal Copies the page at `src[srcOff]` into `slot` (inside the kernel's memory when both are there). */
  store(slot: number, src: Uint8Array, srcOff: number): void {
    const ps = this.pageSize;
    this.written[slot] = 1;
    if (this.arenaPtr >= 0) {
      const engine = this.arenaEngine!;
      if (src === engine.bytes()) {
        engine.copy(this.arenaPtr + slot * ps, srcOff, ps);
        return;
      }
      const at = engine.addressOf(src);
      if (at >= 0) {
        engine.copy(this.arenaPtr + slot * ps, at + srcOff, ps);
        return;
      }
    }
    this.arena.set(src.subarray(srcOff, srcOff + ps), slot * ps);
  }

  /**
   * Gives the arena back (to the SIMD kernel's memory, when it lives there)
   * and empties the cache; it stays usable with a one-page arena until
   * {@link PageCache.resize}d. Called by an encoder for the cache it made
   * itself when the stream closes. Happens on garbage collection otherwise.
   */
  dispose(): void {
    this.freeArena();
    this.arena = new Uint8Array(this.pageSize); // a one-slot cache outside the kernel's memory
    this.keys = new Float64Array(1).fill(EMPTY);
    this.ages = new Float64Array(1);
    this.written = new Uint8Array(1);
    this.mask = 0;
    this.used = 0;
  }

  /** @internal Notes that the kernel wrote into `slot` (a delta applied, a page copied). */
  markWritten(slot: number): void {
    this.written[slot] = 1;
  }

  /**
   * @internal Claims the slot of `addr` for a page the caller copies in
   * itself (the encoder's workers do): as {@link PageCache.insertFrom} without
   * the copy. Returns the slot, or -1 when the hot-page rule keeps the entry there.
   */
  claimSlot(addr: number): number {
    const slot = this.claim(addr, this.generation);
    if (slot >= 0) this.written[slot] = 1;
    return slot;
  }

  /** Caches an all-zero page under `addr`, with the same rule as {@link PageCache.insert}. */
  insertZero(addr: number, generation: number = this.generation): boolean {
    const slot = this.claim(checkAddr(addr), generation);
    if (slot < 0) return false;
    if (this.written[slot] === 0) return true; // all zero already: nothing to touch
    const ps = this.pageSize;
    const at = slot * ps;
    // Test before clearing: a page that was zero already is left as it is (the kernel tests
    // an arena in its memory in a few hundred ns).
    const zero = this.arenaPtr >= 0 ? this.arenaEngine!.isZero(this.arenaPtr + at, ps) : isZeroRange(this.arena, at, ps);
    if (!zero) fillInto(this.arena, 0, at, at + ps);
    this.written[slot] = 0;
    return true;
  }

  /** Drops the entry of `addr`, if cached. Returns whether one was dropped. */
  invalidate(addr: number): boolean {
    const slot = this.slotOf(checkAddr(addr));
    if (this.keys[slot] !== addr) return false;
    this.keys[slot] = EMPTY;
    this.ages[slot] = 0;
    this.used--;
    return true;
  }

  /** Empties every slot. Block bases and counters are kept. */
  clear(): void {
    this.keys.fill(EMPTY);
    this.ages.fill(0);
    this.used = 0;
  }

  /** Empties every slot and forgets the block bases; counters are kept. */
  reset(): void {
    this.clear();
    this.blocks.clear();
    this.declaredEnd = 0;
    this.undeclaredCount = 0;
  }

  /** Starts the next dirty-sync generation and returns it. */
  nextGeneration(): number {
    return ++this.generation;
  }

  /**
   * Changes the cache size while in use, keeping entries (QEMU's pre-2.0
   * resize rule): old slots are visited from 0 upward and moved to their new
   * slot; when two land on the same slot the one with the larger generation
   * stays, and on a tie the one placed first. The size is rounded down as in
   * the constructor. Returns the real new size.
   */
  resize(bytes: number): number {
    const slots = slotCountFor(bytes, this.pageSize, 'bytes');
    if (slots === this.mask + 1) return this.size;
    const ps = this.pageSize;
    const oldPtr = this.arenaPtr;
    const oldArena = this.arena;
    const arena = this.allocArena(slots * ps);
    const arenaPtr = this.arenaPtr;
    this.arenaPtr = oldPtr;
    const keys = new Float64Array(slots).fill(EMPTY);
    const ages = new Float64Array(slots);
    const written = new Uint8Array(slots).fill(1, 0, Math.ceil(this.arenaDirty / ps));
    let used = 0;
    for (let s = 0; s <= this.mask; s++) {
      const key = this.keys[s]!;
      if (key === EMPTY) continue;
      const age = this.ages[s]!;
      const t = Math.floor(key / ps) % slots;
      if (keys[t] === EMPTY) used++;
      else if (!(age > ages[t]!)) continue;
      keys[t] = key;
      ages[t] = age;
      arena.set(oldArena.subarray(s * ps, (s + 1) * ps), t * ps);
      written[t] = 1;
    }
    this.freeArena(); // the old arena
    this.arena = arena;
    this.arenaPtr = arenaPtr;
    this.keys = keys;
    this.ages = ages;
    this.written = written;
    this.mask = slots - 1;
    this.used = used;
    return this.size;
  }

  /** A new arena, in the kernel's shared memory when possible; sets `arenaPtr` for the constructor only. */
  private allocArena(size: number): Uint8Array {
    const engine = this.plainArena ? null : getEngine();
    if (engine !== null && engine.shared) {
      // (Given back by dispose() or a resize, or when the cache is garbage collected.)
      // Not cleared: reused memory's slots are marked as written (`written`), fresh memory is zero.
      const ptr = engine.take(this, size, 4096);
      if (ptr >= 0) {
        this.arenaDirty = engine.takenDirty;
        this.arenaPtr = ptr;
        this.arenaEngine = engine;
        return engine.region(ptr, size);
      }
    }
    this.arenaPtr = -1;
    this.arenaDirty = 0;
    return new Uint8Array(size);
  }

  private freeArena(): void {
    if (this.arenaPtr >= 0) {
      this.arenaEngine!.give(this, this.arenaPtr);
      this.arenaPtr = -1;
    }
  }

  /**
   * The cache key base of block `id`. A block declared with a length (here or
   * in {@link PageCache.declareBlocks}) is placed after the blocks declared
   * before it; a block first seen without a length gets a reserved span of
   * 1 TiB bytes in a separate region. Bases never
   * overlap: a declared block that outgrows its room is moved to the end and
   * its old entries are dropped.
   */
  blockBase(id: string, length?: number): number {
    return this.block(id, length).base;
  }

  /** @internal The key range of block `id`, assigning one when first seen. */
  block(id: string, length?: number): BlockRange {
    const known = this.blocks.get(id);
    if (known !== undefined && (length === undefined || length <= known.span)) return known;
    let range: BlockRange;
    if (length === undefined) {
      range = {
        id,
        base: UNDECLARED_ORIGIN + this.undeclaredCount++ * UNDECLARED_BLOCK_SPAN,
        span: UNDECLARED_BLOCK_SPAN,
        declared: false,
      };
      if (range.base + range.span > Number.MAX_SAFE_INTEGER) throw argRangeError('blocks', 'at most 8191 undeclared blocks per cache', this.undeclaredCount);
    } else {
      if (!Number.isSafeInteger(length) || length < 0) throw argRangeError('length', 'a non-negative safe integer', length);
      const span = Math.ceil(length / this.pageSize) * this.pageSize;
      if (known !== undefined && known.declared && known.base + known.span === this.declaredEnd) {
        // The last declared block may simply grow in place.
        this.declaredEnd = known.base + span;
        range = { id, base: known.base, span, declared: true };
      } else {
        if (known !== undefined) this.dropRange(known.base, known.span);
        range = { id, base: this.declaredEnd, span, declared: true };
        this.declaredEnd += span;
      }
      if (this.declaredEnd > UNDECLARED_ORIGIN) throw argRangeError('length', 'a total of declared blocks below 128 TiB', this.declaredEnd);
    }
    this.blocks.set(id, range);
    return range;
  }

  /** Declares blocks in order, as a MEM_SIZE list would. */
  declareBlocks(blocks: readonly { id: string; length: number }[]): void {
    for (const b of blocks) this.block(b.id, b.length);
  }

  /** The block ranges assigned so far. */
  blockRanges(): BlockRange[] {
    return [...this.blocks.values()];
  }

  /**
   * @internal Takes the slot of `addr` for an insert at `generation`, or
   * returns -1 when the hot-page rule refuses it.
   */
  claim(addr: number, generation: number): number {
    const slot = this.slotOf(addr);
    const key = this.keys[slot]!;
    if (key !== addr) {
      if (key !== EMPTY && this.ages[slot]! + CACHED_PAGE_LIFETIME > generation) {
        this.refused++;
        return -1;
      }
      if (key === EMPTY) this.used++;
      this.keys[slot] = addr;
    }
    this.ages[slot] = generation;
    return slot;
  }

  private dropRange(base: number, span: number): void {
    for (let s = 0; s <= this.mask; s++) {
      const key = this.keys[s]!;
      if (key >= base && key < base + span) {
        this.keys[s] = EMPTY;
        this.ages[s] = 0;
        this.used--;
      }
    }
  }
}

/** Arenas in the kernel's memory go back to it when their cache is garbage collected. */

/** Keys are non-negative safe integers (QEMU's `ram_addr_t`). */
function checkAddr(addr: number): number {
  if (!Number.isSafeInteger(addr) || addr < 0) throw argRangeError('addr', 'a non-negative safe integer', addr);
  return addr;
}

function slotCountFor(size: unknown, pageSize: number, name = 'size'): number {
  if (typeof size !== 'number' || !Number.isFinite(size)) throw argTypeError(name, 'a finite number of bytes', size);
  if (size < pageSize) throw argRangeError(name, `at least one page (${pageSize} bytes)`, size);
  if (size > MAX_CACHE_SIZE) throw argRangeError(name, `at most ${MAX_CACHE_SIZE} bytes`, size);
  const pages = Math.floor(size / pageSize);
  let slots = 1;
  while (slots * 2 <= pages) slots *= 2;
  return slots;
}
