import { argTypeError, XbzrleError } from '../errors.js';
import { DEFAULT_MAX_BLOCKS, DEFAULT_MAX_IMAGE_SIZE, RamRecordParser, type TargetBlock } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import type { XbzrleStats } from '../stats.js';
import { MemoryPageStore } from '../store/memory-page-store.js';
import type { PageStore } from '../store/page-store.js';
import { hasInPlaceAccess } from '../store/page-store.js';
import { ParallelApply } from '../store/parallel-apply.js';
import { RamApplier } from '../store/ram-applier.js';
import { isPromise, RamLoader, type DecodedPageKind } from '../store/ram-loader.js';
import { checkOptions, checkPageSize, checkPositiveInteger, checkThreads } from './options.js';

export type { DecodedPageKind };

/** Options shared by the Node and the Web decoder streams. */
export interface DecoderOptions {
  /** Page size of the stream: a power of two from 1 KiB to 16 KiB. Default 4096. */
  pageSize?: number;
  /** Where pages are kept. Default: a new {@link MemoryPageStore}. */
  store?: PageStore;
  /** Emit a page object per page record (default true); false emits nothing, for when only the store matters. */
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
   * Accept data directly after an EOS that does not parse as a record
   * (padding, bytes appended to a file, a record cut short): the stream ends
   * cleanly at that EOS and `trailingBytes` says how much was ignored. Only
   * the first record after an EOS is judged this way: records that parse are
   * applied as usual, so a next round cut after one or more whole records
   * still fails. Default false: such data fails the stream
   * (`ERR_RAM_TRUNCATED`, or the code of whatever does not parse).
   */
  allowTrailingData?: boolean;
  /**
   * Accept MULTIFD_FLUSH records (0x200) and skip them, as QEMU ≥ 8.1's
   * loader does without multifd (QEMU 8.1 writes them in every stream of a
   * machine type ≥ 8.1); counted in `stats.multifdFlushes`. Default false:
   * `ERR_RAM_UNSUPPORTED`, as QEMU ≤ 8.0 refuses them.
   */
  allowMultifdFlush?: boolean;
  /**
   * The RAM blocks of the machine meant to load the stream
   * (`[{ id, length, maxLength?, resizeable? }]`): the stream is then checked
   * as QEMU's loader checks it against that machine, with QEMU's messages —
   * a MEM_SIZE entry for a block the target lacks (`Unknown ramblock`,
   * `ERR_RAM_UNKNOWN_BLOCK`), a MEM_SIZE length that changes a fixed-size
   * block (`Size mismatch`) or grows a resizeable one past `maxLength` (`Size
   * too large`; both `ERR_RAM_SIZE_MISMATCH`), a page of a block the target
   * lacks (`ERR_RAM_UNKNOWN_BLOCK`) or past its current length, with or
   * without MEM_SIZE (`ERR_RAM_OFFSET`). Default: none.
   */
  target?: readonly TargetBlock[];
  /**
   * Threads to apply records on, with `emitPages: false` and a store that
   * can be written in place (a {@link MemoryPageStore}): the parser stays on
   * the calling thread, page copies, fills and XBZRLE decodes go to
   * `threads - 1` workers sharing the kernel's memory (in batches of up to
   * 4096 records or 4 MiB of input, the next parsed while the workers run
   * one), the records of one page in stream order. Results, statistics and
   * error offsets are those of one thread; after an error, pages of the
   * records after the failing one in its batch may have been written, and
   * the records of the next batch counted.
   * Default 1; otherwise, or where workers are missing, the single-thread
   * path runs.
   */
  threads?: number;
}

/** A decoded page as the core hands it out: `data` is a copy the receiver may keep. */
export interface CorePage {
  block: string;
  offset: number;
  kind: DecodedPageKind;
  data: Uint8Array;
}

/** Pages per output slab: emitted pages are views of a shared allocation. */
const SLAB_PAGES = 64;

/**
 * The decoder itself, without a stream around it: a {@link RamApplier}
 * (parser + loader) with the trailing-data rule, driven by pulling.
 *
 * A driver hands it input chunks ({@link DecoderCore.feed}) and the end of
 * input ({@link DecoderCore.end}), and after each calls
 * {@link DecoderCore.next} until it returns undefined (the input is used up):
 * each call applies records until one page is ready and returns it, or
 * returns a promise while an asynchronous store works (wait, then call again).
 */
export class DecoderCore {
  readonly pageSize: number;
  readonly store: PageStore;
  /** Bytes after the last EOS that were ignored (with `allowTrailingData`). */
  trailingBytes = 0;
  private readonly applier: RamApplier;
  private readonly loader: RamLoader;
  private readonly allowTrailing: boolean;
  private readonly alloc: (size: number) => Uint8Array;
  /** Set once data after the last EOS was found not to parse (with `allowTrailingData`). */
  private trailing = false;
  /** The page of the record just applied, until handed out. */
  private ready: CorePage | null = null;
  private ended = false;
  private finished = false;
  private disposed = false;
  private slab: Uint8Array = new Uint8Array(0);
  private slabPos = 0;

  constructor(options: DecoderOptions | undefined, alloc: (size: number) => Uint8Array = (n) => new Uint8Array(n)) {
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
    this.pageSize = pageSize;
    this.store = store;
    this.alloc = alloc;
    this.allowTrailing = opts.allowTrailingData ?? false;
    const parser = new RamRecordParser({ pageSize, maxBlocks, maxImageSize, allowMultifdFlush: opts.allowMultifdFlush, target: opts.target });
    const emit = opts.emitPages ?? true;
    const threads = checkThreads(opts.threads);
    const parallel = threads > 1 && !emit && hasInPlaceAccess(store) ? ParallelApply.later(threads, pageSize) : null;
    this.loader = new RamLoader({
      pageSize,
      store,
      maxOutput,
      parallel,
      borrow: true,
      onPage: emit ? (block, offset, kind, page, fill) => this.copyOut(block, offset, kind, page, fill) : undefined,
    });
    this.applier = new RamApplier(parser, this.loader);
  }

  /** Counters in QEMU's `query-migrate` shape (what the stream shows). */
  get stats(): XbzrleStats {
    return this.loader.stats;
  }

  /** Blocks from the MEM_SIZE record(s), or undefined when none was seen. */
  get blocks(): RamBlock[] | undefined {
    return this.loader.blocks;
  }

  /** Takes the next input chunk (the previous one must be used up by {@link DecoderCore.next}). */
  feed(chunk: Uint8Array): void {
    if (this.trailing) this.trailingBytes += chunk.length;
    else this.applier.push(chunk); // its PAGE records may be written from it (released when it is used up)
  }

  /** The end of input: the following {@link DecoderCore.next} calls check the stream's end and finish the store. */
  end(): void {
    this.ended = true;
  }

  /**
   * The next decoded page; a promise while an asynchronous store works (wait
   * for it, then call again); undefined when the input is used up (after
   * {@link DecoderCore.end}: when the stream is checked and the store finished).
   * @throws XbzrleError on malformed input, `ERR_RAM_TRUNCATED` at an end without EOS
   */
  next(): CorePage | Promise<unknown> | undefined {
    for (;;) {
      const page = this.ready;
      if (page !== null) {
        this.ready = null;
        return page;
      }
      if (this.trailing) return this.ended ? this.finish() : undefined;
      let rec;
      try {
        rec = this.applier.next();
      } catch (err) {
        if (this.toTrailing(err)) {
          this.loader.release(); // the records before the trailing data were applied: the input is used up
          continue;
        }
        this.loader.releaseAfterError(); // the pages before the error, while their input is still there
        throw err;
      }
      if (rec === null) {
        this.loader.release(); // the input is used up: the driver may reuse it
        if (!this.ended) return undefined;
        try {
          this.applier.end();
        } catch (err) {
          if (!this.toTrailing(err)) throw err;
        }
        return this.finish();
      }
      // The page (if any) is ready when it settles; a failure writes the pages before it first.
      if (isPromise(rec)) return rec.then(undefined, (err: unknown) => {
        this.loader.releaseAfterError();
        throw err;
      });
    }
  }

  /**
   * @internal Runs the core until its input is used up, waiting on the store
   * (a driver that emits no pages: with `emitPages`, the pages are dropped).
   */
  async drain(): Promise<void> {
    for (let r = this.next(); r !== undefined; r = this.next()) if (isPromise(r)) await r;
  }

  /** Releases what the decoder holds besides its store (the worker pool's staging area); idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.loader.releaseAfterError(); // stopped mid-chunk: write what was taken while the input is still there
    this.loader.dispose();
  }

  /** Finishes the store once; a promise while it works. */
  private finish(): Promise<unknown> | undefined {
    if (this.finished) return undefined;
    this.finished = true;
    const done = this.store.finish?.();
    return isPromise(done) ? done : undefined;
  }

  /** A copy of the page in a slab shared by the next pages: the receiver may keep it. */
  private copyOut(block: string, offset: number, kind: DecodedPageKind, page: Uint8Array | null, fill: number): void {
    const ps = this.pageSize;
    if (this.slabPos + ps > this.slab.length) {
      this.slab = this.alloc(ps * SLAB_PAGES);
      this.slabPos = 0;
    }
    const data = this.slab.subarray(this.slabPos, this.slabPos + ps);
    this.slabPos += ps;
    if (page === null) data.fill(fill);
    else data.set(page);
    this.ready = { block, offset, kind, data };
  }

  /**
   * With `allowTrailingData`, turns a framing error right after an EOS into
   * the end of the stream: the rest of the input is counted and ignored.
   */
  private toTrailing(err: unknown): boolean {
    const parser = this.applier.parser;
    if (!this.allowTrailing || !parser.atEos || !(err instanceof XbzrleError) || !err.code.startsWith('ERR_RAM_')) return false;
    this.trailing = true;
    this.trailingBytes = parser.buffered;
    return true;
  }
}
