import { XbzrleError } from '../errors.js';
import { copyInto } from '../codec/copy.js';
import { encodeName, writeU16, writeU64 } from './bytes.js';
import { DeltaViews } from '../codec/delta-views.js';
import { getEngine, kernelAddress, type WasmEngine } from '../codec/wasm/engine.js';
import { ENCODING_FLAG_XBZRLE, MAX_IDSTR_LENGTH, RAM_SAVE_FLAG } from './flags.js';

/** Allocates an output slab; the stream layer passes `Buffer.allocUnsafe`. */
export type SlabAllocator = (size: number) => Uint8Array;

/** Options of {@link RecordWriter}. */
export interface RecordWriterOptions {
  /** Page size of the stream. */
  pageSize: number;
  /** Emit a chunk once this many bytes are pending. Default 64 KiB. */
  chunkSize?: number;
  /**
   * Slab allocator. Default `new Uint8Array(size)`. Slabs in the kernel's
   * memory (`allocPages`) are filled by the kernel's copy from sources there
   * too: one native copy per page, at any alignment, and no view per page.
   */
  alloc?: SlabAllocator;
  /**
   * Told when the writer is done with a slab from `alloc`: every chunk of it
   * was emitted, `used` bytes in all. With a pool behind `alloc`, the slab can
   * be reused once the consumer is done with those chunks; each slab then
   * holds one chunk (a pool needs no room for several: it allocates once).
   */
  release?: (slab: Uint8Array, used: number) => void;
}

/** A block and its length, as listed in a MEM_SIZE record. */
export interface RamBlock {
  /** Block name (QEMU's RAMBlock idstr), 1 to 255 bytes of UTF-8. */
  id: string;
  /** Block length in bytes (QEMU's `used_length`). */
  length: number;
  /** Page size of the block, when a postcopy stream's MEM_SIZE carried one (read only; the writer ignores it). */
  pageSize?: number;
  /** Guest-physical address, when an x-ignore-shared stream's MEM_SIZE carried one (read only; the writer ignores it). */
  address?: number;
}

export const DEFAULT_CHUNK_SIZE = 64 * 1024;

/** The largest `chunkSize` the encoders accept (64 MiB). */
export const MAX_CHUNK_SIZE = 64 << 20;
const HEADER = 8;

/**
 * Serialises RAM records (spec: ram-stream.md §4) into output chunks of at
 * least `chunkSize` bytes. Records are written straight into a slab; a chunk
 * is handed to `onChunk` as a view of the slab once `chunkSize` bytes are
 * pending (or on {@link RecordWriter.flush}), and the slab's remainder is used
 * for the next chunk, so there is no copy and no allocation per record.
 *
 * The writer remembers the block of the last page record and sets CONTINUE
 * when the next page record is in the same block (QEMU's `save_page_header`).
 */
export class RecordWriter {
  /** Bytes written so far, emitted or pending. */
  bytesWritten = 0;

  private readonly pageSize: number;
  private readonly chunkSize: number;
  private readonly slabSize: number;
  private readonly alloc: SlabAllocator;
  private readonly release: ((slab: Uint8Array, used: number) => void) | undefined;
  private readonly onChunk: (chunk: Uint8Array) => void;
  private slab: Uint8Array;
  /** An empty slab of the allocator's own type (one array class keeps the hot code monomorphic). */
  private readonly noSlab: Uint8Array;
  private start = 0;
  private pos = 0;
  private lastBlock: string | null = null;
  /** Views of the encoder's delta area by length. */
  private readonly deltaViews = new DeltaViews(1024);
  private readonly names = new Map<string, Uint8Array>();
  private deltaArea: Uint8Array | null = null;
  private deltaAt = -1;
  /** The last source seen, and a plain array over its bytes (itself when it is one). */
  private aliasOf: Uint8Array | null = null;
  private alias: Uint8Array = new Uint8Array(0);
  /** The current slab's address in the kernel's memory, or -1 (a slab elsewhere). */
  private slabAt = -1;
  /** The kernel, once a slab was in its memory. */
  private engine: WasmEngine | null = null;
  /** The last source seen by a slab in the kernel's memory, and its address there (-1: elsewhere). */
  private sourceOf: Uint8Array | null = null;
  private sourceAt = -1;

  constructor(options: RecordWriterOptions, onChunk: (chunk: Uint8Array) => void) {
    this.pageSize = options.pageSize;
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.alloc = options.alloc ?? ((n) => new Uint8Array(n));
    this.release = options.release;
    // Room for several chunks, so one allocation serves several emits (up to 4 MiB more
    // than one chunk and a record: large chunks get one or two per slab). Slabs a pool
    // recycles hold one chunk: fresh memory costs a page fault per 4 KiB on first use.
    this.slabSize = this.chunkSize + this.maxRecordSize() + (this.release === undefined ? Math.min(7 * this.chunkSize, 4 << 20) : 0);
    this.onChunk = onChunk;
    this.slab = this.take(this.slabSize);
    this.noSlab = this.alloc(0);
  }

  /** Bytes written but not yet emitted. */
  get pending(): number {
    return this.pos - this.start;
  }

  /** The largest page record: header, longest name, XBZRLE head, one page. */
  maxRecordSize(): number {
    return HEADER + 1 + MAX_IDSTR_LENGTH + 3 + this.pageSize;
  }

  /** Forgets the last block, so the next page record carries its name. */
  resetContinue(): void {
    this.lastBlock = null;
  }

  /** Writes a MEM_SIZE record listing `blocks` (lengths must be positive page multiples). */
  memSize(blocks: readonly RamBlock[]): number {
    let total = 0;
    for (const b of blocks) {
      if (!Number.isSafeInteger(b.length) || b.length <= 0 || b.length % this.pageSize !== 0) {
        // A reader stops at the total: a zero-length entry would be read as a record.
        throw new XbzrleError('ERR_INVALID_RECORD', `block ${JSON.stringify(b.id)}: length ${b.length} is not a positive multiple of the page size ${this.pageSize}`);
      }
      total += b.length;
    }
    const at = this.bytesWritten;
    this.reserve(HEADER);
    this.header(total, RAM_SAVE_FLAG.MEM_SIZE);
    for (const b of blocks) {
      const name = this.nameBytes(b.id);
      this.reserve(1 + name.length + 8);
      this.slab[this.pos] = name.length;
      this.slab.set(name, this.pos + 1);
      writeU64(this.slab, this.pos + 1 + name.length, b.length);
      this.advance(1 + name.length + 8);
    }
    this.maybeEmit();
    return this.bytesWritten - at;
  }

  /** Writes a ZERO record with fill byte `fill`. Returns the record length. */
  zero(block: string, offset: number, fill = 0): number {
    const head = this.pageHead(block, offset, RAM_SAVE_FLAG.ZERO, 1);
    this.slab[this.pos] = fill;
    this.advance(1);
    this.maybeEmit();
    return head + 1;
  }

  /** Writes a PAGE record with the page at `src[srcOff]`. Returns the record length. */
  page(block: string, offset: number, src: Uint8Array, srcOff: number): number {
    const ps = this.pageSize;
    const head = this.pageHead(block, offset, RAM_SAVE_FLAG.PAGE, ps);
    if (!this.kernelCopy(this.pos, src, srcOff, ps)) copyInto(this.slab, this.pos, this.plain(src).subarray(srcOff, srcOff + ps)); // src may be the kernel's shared memory
    this.advance(ps);
    this.maybeEmit();
    return head + ps;
  }

  /** Writes an XBZRLE record carrying `len` delta bytes from `delta[deltaOff]`. */
  xbzrle(block: string, offset: number, delta: Uint8Array, deltaOff: number, len: number): number {
    const head = this.pageHead(block, offset, RAM_SAVE_FLAG.XBZRLE, 3 + len);
    this.slab[this.pos] = ENCODING_FLAG_XBZRLE;
    writeU16(this.slab, this.pos + 1, len);
    if (!this.kernelCopy(this.pos + 3, delta, deltaOff, len)) {
      const area = this.plain(delta);
      // A delta area written at one place (the single-thread kernel's): views kept per length;
      // deltas at moving places (a batch's areas): a view per record, of a plain array (cheap).
      const same = area === this.deltaArea && deltaOff === this.deltaAt;
      this.deltaArea = area;
      this.deltaAt = deltaOff;
      // (copyInto: a long delta from the kernel's shared memory to a misaligned place of a
      // plain slab goes through its aligned scratch, ~3x faster than V8's byte-by-byte copy.)
      copyInto(this.slab, this.pos + 3, same ? this.deltaViews.get(area, deltaOff, len) : area.subarray(deltaOff, deltaOff + len));
    }
    this.advance(3 + len);
    this.maybeEmit();
    return head + 3 + len;
  }

  /**
   * True when the next page record of `block` goes with CONTINUE and no
   * name (the last page record was of that block): then whole records of it
   * may be appended with {@link RecordWriter.records}.
   */
  continues(block: string): boolean {
    return block === this.lastBlock;
  }

  /**
   * Bytes the next page record of `block` carries besides those of its
   * CONTINUE form: 0 when it continues the last one's block, else the name's
   * length byte and bytes.
   */
  headExtra(block: string): number {
    return block === this.lastBlock ? 0 : 1 + this.nameBytes(block).length;
  }

  /**
   * Bytes to go before a chunk is due: {@link RecordWriter.records} given
   * fewer leaves the chunk pending; given this many or more, it emits it.
   */
  get room(): number {
    return this.chunkSize - (this.pos - this.start);
  }

  /**
   * Appends `len` bytes from `src[at]` that are whole page records, every one
   * with CONTINUE and no name, of the block the last page record was in (see
   * {@link RecordWriter.continues}), written elsewhere (the encoder's workers
   * do, in the kernel's memory): one copy instead of one per record. The same
   * chunks come out as record by record when `len` reaches
   * {@link RecordWriter.room} only with its last record (the caller cuts its
   * runs of records there).
   */
  records(src: Uint8Array, at: number, len: number): void {
    this.reserve(len);
    if (!this.kernelCopy(this.pos, src, at, len)) copyInto(this.slab, this.pos, this.plain(src).subarray(at, at + len));
    this.advance(len);
    this.maybeEmit();
  }

  /** Writes an EOS record. */
  eos(): number {
    this.reserve(HEADER);
    this.header(0, RAM_SAVE_FLAG.EOS);
    this.maybeEmit();
    return HEADER;
  }

  /** Emits whatever is pending, however small. */
  flush(): void {
    if (this.pos > this.start) this.emit();
  }

  private pageHead(block: string, offset: number, flag: number, payload: number): number {
    const name = block === this.lastBlock ? null : this.nameBytes(block);
    const head = HEADER + (name === null ? 0 : 1 + name.length);
    this.reserve(head + payload);
    this.header(offset, flag | (name === null ? RAM_SAVE_FLAG.CONTINUE : 0));
    if (name !== null) this.name(block, name);
    return head;
  }

  private name(block: string, name: Uint8Array): void {
    this.slab[this.pos] = name.length;
    this.slab.set(name, this.pos + 1);
    this.advance(1 + name.length);
    this.lastBlock = block;
  }

  private header(offset: number, flags: number): void {
    writeU64(this.slab, this.pos, offset + flags);
    this.advance(HEADER);
  }

  private nameBytes(block: string): Uint8Array {
    let bytes = this.names.get(block);
    if (bytes === undefined) {
      bytes = encodeName(block);
      if (bytes.length === 0 || bytes.length > MAX_IDSTR_LENGTH) {
        throw new XbzrleError('ERR_INVALID_RECORD', `block name ${JSON.stringify(block)} must be 1 to ${MAX_IDSTR_LENGTH} bytes of UTF-8`);
      }
      this.names.set(block, bytes);
    }
    return bytes;
  }

  private advance(n: number): void {
    this.pos += n;
    this.bytesWritten += n;
  }

  /** Makes room for `n` contiguous bytes. */
  private reserve(n: number): void {
    if (this.pos + n <= this.slab.length) return;
    if (this.pos > this.start) this.emit();
    this.retire();
    this.slab = this.take(Math.max(this.slabSize, n));
    this.start = 0;
    this.pos = 0;
  }

  /**
   * `src`, or a plain `Uint8Array` over the same bytes when `src` is of a
   * subclass (kernel-memory views, `Buffer`s), whose `subarray` builds an
   * object of that class: ~400 ns a page for kernel-memory views, ~30 ns for a
   * plain array.
   */
  private plain(src: Uint8Array): Uint8Array {
    if (src === this.aliasOf) return this.alias;
    this.aliasOf = src;
    this.alias = Object.getPrototypeOf(src) === Uint8Array.prototype ? src : new Uint8Array(src.buffer, src.byteOffset, src.length);
    return this.alias;
  }

  /** A slab from `alloc`, noting where it is in the kernel's memory, if there. */
  private take(size: number): Uint8Array {
    const slab = this.alloc(size);
    this.slabAt = kernelAddress(slab);
    if (this.slabAt >= 0) this.engine ??= getEngine();
    return slab;
  }

  /**
   * Copies `len` bytes of `src` from `srcOff` to `at` of the slab with the
   * kernel's native copy, when both are in its memory; false otherwise (the
   * caller copies). `src`'s address is kept for the last source: pages come
   * from a few.
   */
  private kernelCopy(at: number, src: Uint8Array, srcOff: number, len: number): boolean {
    if (this.slabAt < 0) return false;
    if (src !== this.sourceOf) {
      this.sourceOf = src;
      this.sourceAt = this.engine!.addressOf(src);
    }
    if (this.sourceAt < 0) return false;
    this.engine!.copy(this.slabAt + at, this.sourceAt + srcOff, len);
    return true;
  }

  /** Hands the current slab (all of it emitted) back to `release`. */
  private retire(): void {
    if (this.slab !== this.noSlab) this.release?.(this.slab, this.pos);
  }

  private maybeEmit(): void {
    if (this.pos - this.start >= this.chunkSize) this.emit();
  }

  private emit(): void {
    const chunk = this.slab.subarray(this.start, this.pos);
    this.start = this.pos;
    // A chunk only starts where a whole chunk and one more record fit, so chunks
    // are never cut short by the end of a slab. Otherwise take a new slab lazily.
    if (this.slab.length - this.pos < this.chunkSize + this.maxRecordSize()) {
      this.retire();
      this.slab = this.noSlab;
      this.slabAt = -1;
      this.start = 0;
      this.pos = 0;
    }
    this.onChunk(chunk);
  }
}

