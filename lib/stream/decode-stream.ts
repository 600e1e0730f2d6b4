import type { TransformCallback } from 'node:stream';
import { Buffer } from 'node:buffer';
import { argTypeError, XbzrleError } from '../errors.js';
import { DEFAULT_MAX_BLOCKS, DEFAULT_MAX_IMAGE_SIZE, RamRecordParser } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import { MemoryPageStore } from '../store/memory-page-store.js';
import type { PageStore } from '../store/page-store.js';
import { isPromise, RamLoader, type DecodedPageKind } from '../store/ram-loader.js';
import { checkOptions, checkPageSize, checkPositiveInteger } from '../core/options.js';
import { PacedTransform } from './paced-transform.js';
import type { XbzrleStats } from '../stats.js';

export type { DecodedPageKind };

/** One output of {@link XbzrleDecodeStream}: a page after its record was applied. */
export interface DecodedPage {
  /** Block name. */
  block: string;
  /** Byte offset of the page in the block. */
  offset: number;
  /** The record that carried it. */
  kind: DecodedPageKind;
  /** The page's content after the record was applied: a copy, yours to keep. */
  data: Buffer;
}

/** Options of {@link XbzrleDecodeStream}. */
export interface XbzrleDecodeStreamOptions {
  /** Page size of the stream: a power of two from 1 KiB to 16 KiB. Default 4096. */
  pageSize?: number;
  /** Where pages are kept. Default: a new {@link MemoryPageStore}. */
  store?: PageStore;
  /** Emit a {@link DecodedPage} per page record (default true); false emits nothing, for when only the store matters. */
  emitPages?: boolean;
  /** Most blocks MEM_SIZE lists may declare. Default 4096; beyond it `ERR_LIMIT_EXCEEDED`. */
  maxBlocks?: number;
  /**
   * Most bytes of memory the stream may describe (the MEM_SIZE total, checked
   * before anything is allocated, or the end of any page without one).
   * Default 16 TiB; beyond it `ERR_LIMIT_EXCEEDED`.
   */
  maxImageSize?: number;
  /** Most bytes of pages (page size × page records) the stream may produce. Default unlimited; beyond it `ERR_LIMIT_EXCEEDED`. */
  maxOutput?: number;
  /**
   * Accept data after the last EOS that is not a valid record (padding, a
   * partly written next round): the stream ends cleanly at that EOS and
   * `trailingBytes` says how much was ignored. Default false: such data fails
   * the stream (`ERR_RAM_TRUNCATED`, or the code of whatever does not parse).
   */
  allowTrailingData?: boolean;
  /** High-water mark of the readable (page) side, in pages. Default 16. */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (byte) side. Default 64 KiB. */
  writableHighWaterMark?: number;
}

/** Pages per output slab: emitted pages are views of a shared allocation. */
const SLAB_PAGES = 64;

/**
 * Parses a QEMU RAM record stream and rebuilds the pages it carries.
 *
 * Writable side: bytes, split anywhere. Readable side: {@link DecodedPage}
 * objects, one per ZERO, PAGE or XBZRLE record, in stream order. Pages are
 * kept in `store` (a {@link MemoryPageStore} by default), since an XBZRLE
 * record is a delta against the receiver's current page.
 *
 * Every check of QEMU's loader is applied, and failures destroy the stream
 * with an {@link XbzrleError} whose `offset` is the stream position:
 * `ERR_RAM_UNKNOWN_FLAGS`, `ERR_RAM_UNSUPPORTED`, `ERR_RAM_NO_BLOCK`,
 * `ERR_RAM_UNKNOWN_BLOCK`, `ERR_RAM_OFFSET`, `ERR_RAM_BAD_ENCODING`,
 * `ERR_RAM_LENGTH`, `ERR_RAM_MEM_SIZE`, `ERR_XBZRLE_CORRUPT`, and
 * `ERR_RAM_TRUNCATED` when the input ends inside a record or without a final
 * EOS. A rejected XBZRLE record leaves its page unchanged. ZERO records with a
 * non-zero fill byte fill the page with it, as QEMU 7.2 does.
 *
 * @example
 * ```ts
 * const store = new MemoryPageStore()
 * await pipeline(fs.createReadStream('ram.xbz'), new XbzrleDecodeStream({ store, emitPages: false }))
 * const image = store.read('ram')
 * ```
 */
export class XbzrleDecodeStream extends PacedTransform {
  /** The page store. */
  readonly store: PageStore;
  /** Page size of the stream. */
  readonly pageSize: number;

  private readonly parser: RamRecordParser;
  private readonly loader: RamLoader;
  private slab: Buffer = Buffer.alloc(0);
  private slabPos = 0;
  private blocked = false;
  private readonly allowTrailing: boolean;
  /** Set once data after the last EOS was found not to parse (with `allowTrailingData`). */
  private trailing = false;
  /** Bytes after the last EOS that were ignored (with `allowTrailingData`). */
  trailingBytes = 0;

  constructor(options?: XbzrleDecodeStreamOptions) {
    const opts = checkOptions(options);
    const pageSize = checkPageSize(opts.pageSize ?? 4096, 'options.pageSize');
    const store = opts.store ?? new MemoryPageStore();
    if (store === null || typeof store !== 'object' || typeof store.get !== 'function' || typeof store.put !== 'function') {
      throw argTypeError('options.store', 'a PageStore (an object with get and put methods)', store);
    }
    if (opts.emitPages !== undefined && typeof opts.emitPages !== 'boolean') throw argTypeError('options.emitPages', 'a boolean', opts.emitPages);
    const maxBlocks = checkPositiveInteger(opts.maxBlocks ?? DEFAULT_MAX_BLOCKS, 'options.maxBlocks');
    const maxImageSize = checkPositiveInteger(opts.maxImageSize ?? DEFAULT_MAX_IMAGE_SIZE, 'options.maxImageSize');
    const maxOutput = opts.maxOutput ?? Infinity;
    if (typeof maxOutput !== 'number' || !(maxOutput >= 0)) throw argTypeError('options.maxOutput', 'a non-negative number of bytes', maxOutput);
    if (opts.allowTrailingData !== undefined && typeof opts.allowTrailingData !== 'boolean') {
      throw argTypeError('options.allowTrailingData', 'a boolean', opts.allowTrailingData);
    }
    super({
      writableObjectMode: false,
      readableObjectMode: true,
      readableHighWaterMark: opts.readableHighWaterMark ?? 16,
      writableHighWaterMark: opts.writableHighWaterMark ?? 64 * 1024,
    });
    this.pageSize = pageSize;
    this.store = store;
    this.parser = new RamRecordParser({ pageSize, maxBlocks, maxImageSize });
    this.allowTrailing = opts.allowTrailingData ?? false;
    const emit = opts.emitPages ?? true;
    this.loader = new RamLoader({ pageSize, store, maxOutput, onPage: emit ? (b, o, k, p, f) => this.emitPage(b, o, k, p, f) : undefined });
  }

  /** Counters in QEMU's `query-migrate` shape (what the stream shows). */
  get stats(): XbzrleStats {
    return this.loader.stats;
  }

  /** Blocks from the MEM_SIZE record(s), or undefined when none was seen. */
  get blocks(): RamBlock[] | undefined {
    return this.loader.blocks;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!(chunk instanceof Uint8Array)) {
      callback(argTypeError('chunk', 'a Buffer or Uint8Array', chunk));
      return;
    }
    if (this.trailing) {
      this.trailingBytes += chunk.length;
      callback();
      return;
    }
    this.parser.push(chunk);
    this.pump(callback);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.trailing) {
      try {
        this.parser.end();
      } catch (err) {
        if (!this.toTrailing(err)) {
          callback(err as Error);
          return;
        }
      }
    }
    const finish = this.store.finish?.();
    if (isPromise(finish)) finish.then(() => callback(), callback);
    else callback();
  }

  /**
   * With `allowTrailingData`, turns a framing error right after an EOS into
   * the end of the stream: the rest of the input is counted and ignored.
   */
  private toTrailing(err: unknown): boolean {
    if (!this.allowTrailing || !this.parser.atEos || !(err instanceof XbzrleError) || !err.code.startsWith('ERR_RAM_')) return false;
    this.trailing = true;
    this.trailingBytes = this.parser.buffered;
    return true;
  }

  /** Applies records until the input chunk is used up, pausing for a full reader or an async store. */
  private pump(callback: TransformCallback): void {
    try {
      for (;;) {
        let rec;
        try {
          rec = this.parser.next();
        } catch (err) {
          if (this.toTrailing(err)) break;
          throw err;
        }
        if (rec === null) break;
        this.stats.transferred = this.parser.position;
        const pending = this.loader.apply(rec);
        if (pending !== undefined) {
          pending.then(() => this.continueAfter(callback), callback);
          return;
        }
        if (this.blocked) {
          this.continueAfter(callback);
          return;
        }
      }
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }

  private continueAfter(callback: TransformCallback): void {
    if (this.blocked) {
      this.blocked = false;
      this.resumeOnRead(() => this.pump(callback));
    } else {
      this.pump(callback);
    }
  }

  /** Pushes a page record's result: a copy of `page`, or a page of `fill` bytes when `page` is null. */
  private emitPage(block: string, offset: number, kind: DecodedPageKind, page: Uint8Array | null, fill: number): void {
    const ps = this.pageSize;
    if (this.slabPos + ps > this.slab.length) {
      this.slab = Buffer.allocUnsafe(ps * SLAB_PAGES);
      this.slabPos = 0;
    }
    const data = this.slab.subarray(this.slabPos, this.slabPos + ps);
    this.slabPos += ps;
    if (page === null) data.fill(fill);
    else data.set(page);
    if (!this.push({ block, offset, kind, data } satisfies DecodedPage)) this.blocked = true;
  }
}

/** Creates an {@link XbzrleDecodeStream}. */
export function createXbzrleDecodeStream(options?: XbzrleDecodeStreamOptions): XbzrleDecodeStream {
  return new XbzrleDecodeStream(options);
}
