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
  /** @internal Stores of an in-place store queued here and made on a worker pool (no `onPage`). */
  parallel?: ParallelApply | null;
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
  private readonly scratch: Uint8Array;
  private readonly parallel: ParallelApply | null;

  constructor(options: RamLoaderOptions) {
    this.pageSize = options.pageSize;
    this.maxOutput = options.maxOutput ?? Infinity;
    this.store = options.store;
    this.memory = hasInPlaceAccess(options.store) ? options.store : null;
    this.onPage = options.onPage;
    this.stats = new XbzrleStats(options.pageSize);
    this.scratch = new Uint8Array(options.pageSize);
    this.parallel = this.memory !== null && options.onPage === undefined ? (options.parallel ?? null) : null;
  }

  /** @internal Releases the worker pool's staging area (the loader is not used afterwards). */
  dispose(): void {
    this.parallel?.dispose();
  }

  /** Makes the stores queued for the worker pool (stream order kept); throws the first failed delta's error. */
  flush(): void {
    if (this.parallel !== null && this.parallel.count > 0) this.parallel.run(this.memory!);
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
        if (this.parallel !== null && this.queue(rec)) return undefined;
        return this.zero(rec.block, rec.offset, rec.fill);
      case 'page':
        stats.countPage();
        if (this.parallel !== null && this.queue(rec)) return undefined;
        return this.page(rec.block, rec.offset, rec.src.subarray(rec.srcOffset, rec.srcOffset + rec.length));
      case 'xbzrle':
        stats.xbzrlePages++;
        stats.countDelta(rec.size);
        if (this.parallel !== null && this.queue(rec)) return undefined;
        return this.delta(rec.block, rec.offset, rec.src, rec.srcOffset, rec.length, rec.dataPosition);
    }
  }

  /**
   * Queues the store of a page record for the worker pool; false when it
   * cannot be (the page is not in the pool's memory: the caller makes it now,
   * after the queued ones).
   */
  private queue(rec: RamRecord): boolean {
    const par = this.parallel!;
    const memory = this.memory!;
    const ps = this.pageSize;
    if (par.full) par.run(memory);
    const { block, offset } = rec;
    let loc = memory.locate(block, offset, ps, rec.kind === 'page');
    if (loc === undefined && rec.kind === 'zero') {
      // Its whole segment untouched (so no queued job near it): filled now, zero fills allocating nothing.
      memory.fill(block, offset, ps, rec.fill);
      return true;
    }
    // A delta against a page never written is checked now (apply() runs the queue before
    // its error), then applied to the new zero page without a second check.
    const checked = loc === undefined;
    loc ??= this.freshPage(block, offset, rec.src, rec.srcOffset, rec.length, rec.dataPosition);
    const dst = par.address(loc.bytes, loc.at);
    if (dst < 0) {
      par.run(memory);
      return false;
    }
    if (rec.kind === 'zero') par.fill(block, offset, dst, rec.fill, rec.position);
    else if (rec.kind === 'page') par.page(block, offset, dst, rec.src, rec.srcOffset, rec.position);
    else par.delta(block, offset, dst, rec.src, rec.srcOffset, rec.length, rec.dataPosition, checked);
    return true;
  }

  /**
   * The page for a delta against memory never written (zeros, so the delta is
   * the page): the delta is checked first, so a bad one makes nothing.
   */
  private freshPage(block: string, offset: number, src: Uint8Array, srcOffset: number, length: number, position: number): PageLocation {
    const result = checkDelta(src, srcOffset, length, this.pageSize);
    if (result < 0) throw corrupt(result, position);
    return this.memory!.locate(block, offset, this.pageSize, true)!;
  }

  private zero(block: string, offset: number, fill: number): Promise<void> | undefined {
    const ps = this.pageSize;
    if (this.store === null) return undefined;
    if (this.memory !== null) {
      this.memory.fill(block, offset, ps, fill);
      this.onPage?.(block, offset, 'zero', null, fill);
      return undefined;
    }
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
    const memory = this.memory;
    if (memory !== null) {
      // Decoded in place, validated before anything is written: a bad delta
      // changes nothing (not even the store's extent).
      let loc = memory.locate(block, offset, ps, false);
      if (loc !== undefined) decodeInto(src, srcOffset, length, loc.bytes, loc.at, ps, position);
      else {
        loc = this.freshPage(block, offset, src, srcOffset, length, position);
        applyChecked(src, srcOffset, length, loc.bytes, loc.at);
      }
      memory.written(block, offset + ps);
      this.onPage?.(block, offset, 'xbzrle', loc.bytes.subarray(loc.at, loc.at + ps), 0);
      return undefined;
    }
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
