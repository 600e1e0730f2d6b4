import { copyInto, fillInto } from '../codec/copy.js';
import { applyChecked, checkDelta, corrupt, decodeInto } from '../codec/decode.js';
import { XbzrleError } from '../errors.js';
import type { RamRecord } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import { XbzrleStats } from '../stats.js';
import { hasInPlaceAccess, type InPlacePageStore, type PageLocation, type PageStore } from './page-store.js';
import type { ParallelApply } from './parallel-apply.js';

/** Kinds of page record. */
export type DecodedPageKind = 'page' | 'zero' | 'xbzrle';

/**
 * Receives each page after its record was applied: `page` is a view valid
 * only during the call, or null for a ZERO record (the page is `fill` bytes).
 */
export type PageSink = (block: string, offset: number, kind: DecodedPageKind, page: Uint8Array | null, fill: number) => void;

/** Options of {@link RamLoader}. */
export interface RamLoaderOptions {
  /** Page size of the stream. */
  pageSize: number;
  /** Where pages go; null validates and counts only (XBZRLE deltas are checked, not applied). */
  store: PageStore | null;
  /** Called for every page record once applied (not in validate-only mode, where pages are unknown). */
  onPage?: PageSink;
  /** Most bytes of pages (page size × page records) to apply. Default unlimited; beyond it `ERR_LIMIT_EXCEEDED`. */
  maxOutput?: number;
  /**
   * @internal Stores of an in-place store queued here and made on a worker
   * pool (no `onPage`): its batches, or a function making them, called once
   * the store's {@link PageStore.parallelAfter} bytes of XBZRLE deltas were
   * applied on this thread (at once when it has none).
   */
  parallel?: ParallelApply | null | (() => ParallelApply | null);
  /**
   * @internal PAGE records go to a store that can take them without a copy
   * ({@link PageStore.putBorrowed}): the caller calls {@link RamLoader.release}
   * before the input they lie in changes (and before it gives up on an error).
   */
  borrow?: boolean;
}

/**
 * Applies parsed RAM records to a {@link PageStore}, as QEMU's loader applies
 * them to guest memory, and counts them. Shared by the decode stream and the
 * migration-file reader. Store calls may be asynchronous: {@link RamLoader.apply}
 * then returns a promise, and the caller must wait for it before reading the
 * next record (the record's payload is only valid until then).
 */
export class RamLoader {
  /** Counters of what the stream showed. */
  readonly stats: XbzrleStats;
  /** Blocks from MEM_SIZE records (merged), or undefined before the first. */
  blocks: RamBlock[] | undefined;
  /** Bytes of ZERO, PAGE and XBZRLE records (what QEMU's `ram.transferred` counts, less EOS of PART sections). */
  pageRecordBytes = 0;

  private readonly pageSize: number;
  private readonly maxOutput: number;
  private output = 0;
  private readonly store: PageStore | null;
  /** The store, when it lets records be applied in its memory. */
  private readonly memory: InPlacePageStore | null;
  private readonly onPage: PageSink | undefined;
  /** The store taking PAGE records without a copy (`borrow`), or null. */
  private readonly borrow: PageStore | null;
  /**
   * @internal With `borrow`: the input chunk whose PAGE records the store may
   * take without a copy (not the parser's own buffer of a record cut across
   * chunks, which it reuses for the next such record); null for none.
   */
  input: Uint8Array | null = null;
  private readonly scratch: Uint8Array;
  private parallel: ParallelApply | null = null;
  /** Makes the worker pool's batches once enough deltas came (`parallel` as a function), else null. */
  private makeParallel: (() => ParallelApply | null) | null = null;
  /** Bytes of XBZRLE deltas still to apply on this thread before {@link RamLoader.makeParallel} runs. */
  private parallelAfter = 0;

  constructor(options: RamLoaderOptions) {
    this.pageSize = options.pageSize;
    this.maxOutput = options.maxOutput ?? Infinity;
    this.store = options.store;
    this.memory = hasInPlaceAccess(options.store) ? options.store : null;
    this.onPage = options.onPage;
    this.stats = new XbzrleStats(options.pageSize);
    this.scratch = new Uint8Array(options.pageSize);
    this.borrow = options.borrow === true && typeof options.store?.putBorrowed === 'function' ? options.store : null;
    const parallel = this.memory !== null && options.onPage === undefined ? (options.parallel ?? null) : null;
    if (typeof parallel === 'function') {
      this.makeParallel = parallel;
      this.parallelAfter = this.memory!.parallelAfter ?? 0;
      if (this.parallelAfter <= 0) this.startParallel();
    } else if (parallel !== null) {
      this.parallel = parallel;
      this.memory!.shareMemory?.();
    }
  }

  /** Starts queuing stores for the worker pool (nothing is queued before: every record so far was made). */
  private startParallel(): void {
    const make = this.makeParallel!;
    this.makeParallel = null;
    const parallel = make();
    if (parallel === null) return;
    this.memory!.shareMemory?.();
    this.parallel = parallel;
  }

  /** @internal Releases the worker pool's staging area (the loader is not used afterwards). */
  dispose(): void {
    this.parallel?.dispose();
  }

  /** Makes the stores queued for the worker pool (stream order kept); throws the first failed delta's error. */
  flush(): void {
    if (this.parallel !== null && this.parallel.count > 0) this.parallel.flush(this.memory!);
  }

  /** With `borrow`: the store is done with the input (the PAGE records it took are written). */
  release(): void {
    this.input = null;
    this.borrow?.releaseBorrowed?.();
  }

  /** {@link RamLoader.release} on the way out of an error: a failure of the store's own writes is not the error reported. */
  releaseAfterError(): void {
    try {
      this.release();
    } catch {
      // (the first error is reported)
    }
  }

  /**
   * Applies one record; returns a promise when the store is asynchronous.
   * A store's `XbzrleError` without an offset gets the record's position.
   */
  apply(rec: RamRecord): Promise<void> | undefined {
    try {
      return this.applyRecord(rec);
    } catch (err) {
      this.flush(); // what was queued before this record is made first (its error comes first)
      if (err instanceof XbzrleError && err.offset === undefined) {
        throw new XbzrleError(err.code, `record at byte ${rec.position}: ${err.message}`, { offset: rec.position, cause: err });
      }
      throw err;
    }
  }

  private applyRecord(rec: RamRecord): Promise<void> | undefined {
    const stats = this.stats;
    if (rec.kind !== 'eos' && rec.kind !== 'mem_size') {
      this.pageRecordBytes += rec.size;
      this.output += this.pageSize;
      if (this.output > this.maxOutput) {
        throw new XbzrleError('ERR_LIMIT_EXCEEDED', `record at byte ${rec.position} takes the output past the maxOutput limit of ${this.maxOutput} bytes`, { offset: rec.position });
      }
    }
    switch (rec.kind) {
      case 'eos':
        stats.countEos();
        stats.dirtySyncCount++;
        return undefined;
      case 'mem_size': {
        this.flush();
        stats.countMemSize();
        const merged = new Map((this.blocks ?? []).map((b) => [b.id, b]));
        for (const b of rec.blocks) merged.set(b.id, { ...b });
        this.blocks = [...merged.values()];
        // QEMU rounds a block length up to a whole page (qemu_ram_resize), and loads that last
        // page whole: the store's image of a block is that long, whatever the store.
        const ps = this.pageSize;
        const declared = rec.blocks.some((b) => b.length % ps !== 0)
          ? rec.blocks.map((b) => (b.length % ps === 0 ? b : { ...b, length: Math.ceil(b.length / ps) * ps }))
          : rec.blocks;
        return orUndefined(this.store?.declare?.(declared));
      }
      case 'zero':
        stats.countZero();
        return this.place(rec, false);
      case 'page':
        stats.countPage();
        return this.place(rec, false);
      case 'xbzrle':
        stats.xbzrlePages++;
        stats.countDelta(rec.size);
        return this.place(rec, false);
    }
  }

  /**
   * Applies a page record: queued for the worker pool, in place, or through
   * `get`/`put`. A store that cannot serve the page in place now (its
   * `locate` gave null) prepares it first (after what was queued is made:
   * preparing may write pages out), then the record is placed again; still
   * null, it goes through `get`/`put`.
   */
  private place(rec: RamRecord, prepared: boolean): Promise<void> | undefined {
    const memory = this.memory;
    if (memory !== null) {
      // A page not cached has no job queued on it (jobs are on pages the store holds): lent as it is.
      if (rec.kind === 'page' && this.lend(rec)) return undefined;
      if (this.makeParallel !== null && rec.kind === 'xbzrle' && !prepared && (this.parallelAfter -= rec.length) <= 0) this.startParallel();
      let done = this.parallel !== null ? this.queue(rec) : false;
      if (done === false) done = this.inPlace(rec, memory);
      if (done === true) return undefined;
      if (done !== null) return done;
      this.flush();
      if (!prepared && memory.prepare !== undefined) return this.prepareThenPlace(rec, memory);
    }
    switch (rec.kind) {
      case 'zero':
        return this.zero(rec.block, rec.offset, rec.fill);
      case 'page':
        return this.page(rec.block, rec.offset, rec.src.subarray(rec.srcOffset, rec.srcOffset + rec.length));
      default:
        return this.delta(rec.block, rec.offset, rec.src, rec.srcOffset, rec.length, rec.dataPosition);
    }
  }

  /**
   * Has the store prepare the page of `rec`, then places it again. Apart from
   * {@link RamLoader.place} so that the closure's context is not made on
   * every record placed (V8 makes it when the function is entered).
   */
  private prepareThenPlace(rec: RamRecord, memory: InPlacePageStore): Promise<void> | undefined {
    return memory.prepare!(rec.block, rec.offset, this.pageSize, rec.kind !== 'xbzrle').then(() => this.place(rec, true));
  }

  /**
   * A PAGE record of the chunk fed, taken as it is by a store that borrows
   * (no copy; see {@link RamLoaderOptions.borrow}); false when it is not.
   */
  private lend(rec: RamRecord): boolean {
    if (this.borrow === null || rec.src !== this.input) return false;
    const page = rec.src.subarray(rec.srcOffset, rec.srcOffset + rec.length);
    if (!this.borrow.putBorrowed!(rec.block, rec.offset, page)) return false;
    this.onPage?.(rec.block, rec.offset, 'page', page, 0);
    return true;
  }

  /**
   * Applies a page record in the store's memory on this thread: true when
   * done, a promise when the store works, null when it cannot serve the page
   * now.
   */
  private inPlace(rec: RamRecord, memory: InPlacePageStore): true | Promise<void> | null {
    const ps = this.pageSize;
    const { block, offset } = rec;
    if (rec.kind === 'zero') return this.fillInPlace(block, offset, rec.fill, memory);
    if (rec.kind === 'page') {
      const put = this.page(block, offset, rec.src.subarray(rec.srcOffset, rec.srcOffset + rec.length));
      return put === undefined ? true : put;
    }
    // Decoded in place, validated before anything is written: a bad delta
    // changes nothing (not even the store's extent).
    let loc = memory.locate(block, offset, ps, false);
    if (loc === null) return null;
    const checked = loc === undefined;
    loc ??= this.freshPage(block, offset, rec.src, rec.srcOffset, rec.length, rec.dataPosition);
    if (loc === null) return null;
    this.applyAt(rec, loc, checked);
    this.onPage?.(block, offset, 'xbzrle', loc.bytes.subarray(loc.at, loc.at + ps), 0);
    return true;
  }

  /** A ZERO record in the store's memory (apart from {@link RamLoader.inPlace}: see {@link RamLoader.prepareThenPlace}). */
  private fillInPlace(block: string, offset: number, fill: number, memory: InPlacePageStore): true | Promise<void> {
    const filled = memory.fill(block, offset, this.pageSize, fill);
    if (isPromise(filled)) return filled.then(() => this.onPage?.(block, offset, 'zero', null, fill));
    this.onPage?.(block, offset, 'zero', null, fill);
    return true;
  }

  /**
   * Queues the store of a page record for the worker pool: true when queued
   * (or made at once), a promise while the store works, false when it cannot
   * be (the page is not in the pool's memory: the caller makes it now, after
   * the queued ones), null when the store cannot serve the page now.
   */
  private queue(rec: RamRecord): boolean | Promise<void> | null {
    const par = this.parallel!;
    const memory = this.memory!;
    const ps = this.pageSize;
    const { block, offset } = rec;
    let loc = memory.locate(block, offset, ps, rec.kind === 'page');
    if (loc == null && rec.kind === 'zero') {
      // Memory never written, or not in the store's memory now: no queued job is on the page
      // (those are on pages the store holds, waiting to be written), so it is filled now (zero
      // fills of memory never written allocating nothing).
      const filled = memory.fill(block, offset, ps, rec.fill);
      if (!isPromise(filled)) return true;
      // The store writes pages out first: the queued jobs are made before it does (it starts
      // on a later tick).
      try {
        par.flush(memory);
      } catch (err) {
        (filled as Promise<void>).catch(() => undefined); // the error reported is the delta's
        throw err;
      }
      return filled as Promise<void>;
    }
    if (loc === null) return null;
    // A delta against a page never written is checked now (apply() makes the queue before
    // its error), then applied to the new zero page without a second check.
    const checked = loc === undefined;
    loc ??= this.freshPage(block, offset, rec.src, rec.srcOffset, rec.length, rec.dataPosition);
    if (loc === null) return null;
    const dst = par.address(loc.bytes, loc.at);
    if (dst < 0) {
      par.flush(memory);
      return false;
    }
    par.add(rec, dst, checked, memory);
    return true;
  }

  /**
   * Makes a page record on this thread in the page at `loc` of the in-place
   * store (a delta: validated first, unless `checked` already), and records it written.
   */
  private applyAt(rec: RamRecord, loc: PageLocation, checked: boolean): void {
    const ps = this.pageSize;
    if (rec.kind === 'zero') fillInto(loc.bytes, rec.fill, loc.at, loc.at + ps);
    else if (rec.kind === 'page') copyInto(loc.bytes, loc.at, rec.src.subarray(rec.srcOffset, rec.srcOffset + ps));
    else if (checked) applyChecked(rec.src, rec.srcOffset, rec.length, loc.bytes, loc.at);
    else decodeInto(rec.src, rec.srcOffset, rec.length, loc.bytes, loc.at, ps, rec.dataPosition);
    this.memory!.written(rec.block, rec.offset + ps);
  }

  /**
   * The page for a delta against memory never written (zeros, so the delta is
   * the page): the delta is checked first, so a bad one makes nothing. Null
   * when the store has no room for it now.
   */
  private freshPage(block: string, offset: number, src: Uint8Array, srcOffset: number, length: number, position: number): PageLocation | null {
    const memory = this.memory!;
    memory.fresh?.(block, offset);
    const result = checkDelta(src, srcOffset, length, this.pageSize);
    if (result < 0) throw corrupt(result, position);
    const loc = memory.locate(block, offset, this.pageSize, true);
    if (loc == null) return null;
    fillInto(loc.bytes, 0, loc.at, loc.at + this.pageSize); // a store's new page may hold old bytes
    return loc;
  }

  private zero(block: string, offset: number, fill: number): Promise<void> | undefined {
    if (this.store === null) return undefined;
    const page = this.scratch.fill(fill);
    return then(this.store.put(block, offset, page), () => this.onPage?.(block, offset, 'zero', page, 0));
  }

  private page(block: string, offset: number, page: Uint8Array): Promise<void> | undefined {
    if (this.store === null) return undefined;
    return then(this.store.put(block, offset, page), () => this.onPage?.(block, offset, 'page', page, 0));
  }

  private delta(block: string, offset: number, src: Uint8Array, srcOffset: number, length: number, position: number): Promise<void> | undefined {
    const ps = this.pageSize;
    const store = this.store;
    if (store === null) {
      const result = checkDelta(src, srcOffset, length, ps);
      if (result < 0) throw corrupt(result, position);
      return undefined;
    }
    const page = this.scratch;
    return then(store.get(block, offset, page), () => {
      decodeInto(src, srcOffset, length, page, 0, ps, position);
      return then(store.put(block, offset, page), () => this.onPage?.(block, offset, 'xbzrle', page, 0));
    });
  }
}

/** Runs `next` now, or after `result` when it is a promise. */
function then(result: void | Promise<void> | undefined, next: () => void | Promise<void> | undefined): Promise<void> | undefined {
  if (isPromise(result)) return result.then(next);
  return orUndefined(next());
}

/** @internal */
export function isPromise(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as Promise<void> | undefined)?.then === 'function';
}

function orUndefined(value: void | Promise<void> | undefined): Promise<void> | undefined {
  return isPromise(value) ? value : undefined;
}
