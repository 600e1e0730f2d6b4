import { copyInto, fillInto } from '../codec/copy.js';
import { argRangeError, XbzrleError } from '../errors.js';
import { getEngine } from '../codec/wasm/engine.js';
import type { RamBlock } from '../format/record-writer.js';
import type { PageLocation, PageStore } from './page-store.js';

/** Memory is allocated in segments of this size, when first written. */
const SEGMENT_SHIFT = 16;
const SEGMENT = 1 << SEGMENT_SHIFT;
const SEGMENT_MASK = SEGMENT - 1;

/** Default {@link MemoryPageStoreOptions.maxMemory}: 2 GiB. */
export const DEFAULT_MAX_MEMORY = 2 * 1024 ** 3;

/** Options of {@link MemoryPageStore}. */
export interface MemoryPageStoreOptions {
  /**
   * Most bytes of page memory the store may allocate (default 2 GiB). A stream
   * that needs more fails with `ERR_LIMIT_EXCEEDED` instead of exhausting the
   * process: decode large images with a `FilePageStore`, or raise this.
   */
  maxMemory?: number;
}

interface BlockImage {
  segments: Map<number, Uint8Array>;
  /** Length from MEM_SIZE, or -1. */
  declared: number;
  /** End of the highest byte written. */
  extent: number;
}

const NO_IMAGE: BlockImage = { segments: new Map(), declared: -1, extent: 0 };
const NO_SEGMENT: Uint8Array = new Uint8Array(0);

/**
 * A {@link PageStore} in memory: every block is a sparse image made of 64 KiB
 * segments allocated on first write, so memory follows the pages actually
 * seen (all-zero pages never allocate). Pages never written read as zeros.
 *
 * @example
 * ```ts
 * const store = new MemoryPageStore()
 * await pipeline(source, new XbzrleDecodeStream({ store }), sink)
 * const ram = store.read('pc.ram')
 * ```
 */
export class MemoryPageStore implements PageStore {
  /** The allocation limit in bytes. */
  readonly maxMemory: number;
  private readonly images = new Map<string, BlockImage>();
  private allocated = 0;
  private readonly location: PageLocation = { bytes: new Uint8Array(0), at: 0 };
  /** The segment {@link MemoryPageStore.locate} found last (index NaN: none). */
  private readonly last: { block: string; index: number; image: BlockImage; segment: Uint8Array } = { block: '', index: NaN, image: NO_IMAGE, segment: NO_SEGMENT };
  /** Addresses of segments allocated in the SIMD kernel's memory (freed on dispose or GC). */
  private readonly kernelSegments: number[] = [];

  constructor(options: MemoryPageStoreOptions = {}) {
    const max = options.maxMemory ?? DEFAULT_MAX_MEMORY;
    if (typeof max !== 'number' || !(max >= 0)) throw argRangeError('options.maxMemory', 'a non-negative number of bytes', max);
    this.maxMemory = max;
  }

  /** Bytes of segment memory allocated. */
  get memoryUsage(): number {
    return this.allocated;
  }

  get(block: string, offset: number, into: Uint8Array): void {
    const img = this.images.get(block);
    let done = 0;
    while (done < into.length) {
      const at = offset + done;
      const seg = img?.segments.get(Math.floor(at / SEGMENT));
      const from = at & SEGMENT_MASK;
      const n = Math.min(SEGMENT - from, into.length - done);
      if (seg === undefined) into.fill(0, done, done + n);
      else into.set(seg.subarray(from, from + n), done);
      done += n;
    }
  }

  put(block: string, offset: number, data: Uint8Array): void {
    const img = this.image(block);
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const from = at & SEGMENT_MASK;
      const n = Math.min(SEGMENT - from, data.length - done);
      copyInto(this.segment(img, at), from, data.subarray(done, done + n));
      done += n;
    }
    if (offset + data.length > img.extent) img.extent = offset + data.length;
  }

  /** Sets `length` bytes from `offset` to `byte`; zero fills of untouched memory allocate nothing. */
  fill(block: string, offset: number, length: number, byte: number): void {
    const img = this.image(block);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const from = at & SEGMENT_MASK;
      const n = Math.min(SEGMENT - from, length - done);
      const index = Math.floor(at / SEGMENT);
      const seg = img.segments.get(index);
      if (seg !== undefined) fillInto(seg, byte, from, from + n);
      else if (byte !== 0) fillInto(this.segment(img, at), byte, from, from + n);
      done += n;
    }
    if (offset + length > img.extent) img.extent = offset + length;
  }

  /**
   * A live view of `length` bytes at `offset` (allocating its segment), for
   * in-place updates. The range must not cross a 64 KiB boundary, which a
   * page-aligned page of up to 64 KiB never does. With `create: false`,
   * returns undefined instead of allocating, and changes nothing. The view
   * must not be used after {@link MemoryPageStore.dispose}: the segment's
   * memory goes back to the kernel and may hold other data.
   */
  view(block: string, offset: number, length: number, create?: true): Uint8Array;
  view(block: string, offset: number, length: number, create: boolean): Uint8Array | undefined;
  view(block: string, offset: number, length: number, create = true): Uint8Array | undefined {
    const loc = this.locate(block, offset, length, create);
    return loc?.bytes.subarray(loc.at, loc.at + length);
  }

  /**
   * Where `length` bytes at `offset` live: `bytes[at…]`, `bytes` being their
   * 64 KiB segment (allocated unless `create` is false; then undefined for
   * memory never written). As {@link MemoryPageStore.view} without making a
   * view; the returned object is reused by the next call.
   */
  locate(block: string, offset: number, length: number, create: boolean): PageLocation | undefined {
    const from = offset & SEGMENT_MASK;
    if (from + length > SEGMENT) throw argRangeError('length', 'a range inside one 64 KiB segment', length);
    const loc = this.location;
    const index = Math.floor(offset / SEGMENT);
    // The segment of the last call: a decoder's next page is in it 15 times out of 16.
    const last = this.last;
    if (index === last.index && block === last.block) {
      loc.bytes = last.segment;
      loc.at = from;
      if (create && offset + length > last.image.extent) last.image.extent = offset + length;
      return loc;
    }
    if (!create) {
      const img = this.images.get(block);
      const seg = img?.segments.get(index);
      if (seg === undefined) return undefined;
      this.remember(block, index, img!, seg);
      loc.bytes = seg;
      loc.at = from;
      return loc;
    }
    const known = this.images.has(block);
    const img = this.image(block);
    let seg: Uint8Array;
    try {
      seg = this.segment(img, offset);
    } catch (err) {
      // Refused by maxMemory: the store stays as it was, no new block either.
      if (!known) this.images.delete(block);
      throw err;
    }
    this.remember(block, index, img, seg);
    loc.bytes = seg;
    loc.at = from;
    if (offset + length > img.extent) img.extent = offset + length;
    return loc;
  }

  private remember(block: string, index: number, image: BlockImage, segment: Uint8Array): void {
    const last = this.last;
    last.block = block;
    last.index = index;
    last.image = image;
    last.segment = segment;
  }

  /** Records that bytes up to `end` of `block` were written in place (through a `view`). */
  written(block: string, end: number): void {
    const img = this.image(block);
    if (end > img.extent) img.extent = end;
  }

  /**
   * Frees the store's memory now (segments in the SIMD kernel's memory go back
   * to it; they would on garbage collection otherwise). The store is empty after.
   */
  dispose(): void {
    if (this.kernelSegments.length > 0) getEngine()?.giveAll(this);
    this.kernelSegments.length = 0;
    this.images.clear();
    this.allocated = 0;
    this.remember('', NaN, NO_IMAGE, NO_SEGMENT);
  }

  declare(blocks: readonly RamBlock[]): void {
    for (const b of blocks) this.image(b.id).declared = b.length;
  }

  /** The blocks seen, with their MEM_SIZE length, or the extent written when none was declared. */
  blocks(): RamBlock[] {
    return [...this.images].map(([id, img]) => ({ id, length: img.declared >= 0 ? img.declared : img.extent }));
  }

  /** True when the block was declared or written. */
  has(block: string): boolean {
    return this.images.has(block);
  }

  /** A copy of a whole block (its declared length, or the extent written). Unknown blocks give an empty array. */
  read(block: string): Uint8Array {
    const img = this.images.get(block);
    if (img === undefined) return new Uint8Array(0);
    const length = img.declared >= 0 ? img.declared : img.extent;
    const out = new Uint8Array(length);
    this.get(block, 0, out);
    return out;
  }

  /**
   * A zeroed segment, in the SIMD kernel's shared memory when it has room (so
   * XBZRLE deltas are applied there in place), else a plain array.
   */
  private newSegment(): Uint8Array {
    const engine = getEngine();
    if (engine !== null && engine.shared) {
      // (Given back by dispose(), or when the store is garbage collected.)
      const ptr = engine.take(this, SEGMENT, 4096, true);
      if (ptr >= 0) {
        this.kernelSegments.push(ptr);
        return engine.region(ptr, SEGMENT); // zero: fresh memory untouched, reused memory cleared
      }
    }
    return new Uint8Array(SEGMENT);
  }

  private image(block: string): BlockImage {
    let img = this.images.get(block);
    if (img === undefined) {
      img = { segments: new Map(), declared: -1, extent: 0 };
      this.images.set(block, img);
    }
    return img;
  }

  private segment(img: BlockImage, at: number): Uint8Array {
    const index = Math.floor(at / SEGMENT);
    let seg = img.segments.get(index);
    if (seg === undefined) {
      if (this.allocated + SEGMENT > this.maxMemory) {
        throw new XbzrleError(
          'ERR_LIMIT_EXCEEDED',
          `MemoryPageStore would hold more than its maxMemory of ${this.maxMemory} bytes (use a FilePageStore, or raise maxMemory)`,
        );
      }
      seg = this.newSegment();
      img.segments.set(index, seg);
      this.allocated += SEGMENT;
    }
    return seg;
  }
}
