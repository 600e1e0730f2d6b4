import { checkDelta, corrupt } from '../codec/decode.js';
import { getEngine } from '../codec/wasm/engine.js';
import { getKernelPool, JOB_A, JOB_B, JOB_RESULT, JOB_WORDS, type JobTable, type KernelPool } from '../codec/wasm/pool.js';
import type { RamRecord } from '../format/record-parser.js';
import type { InPlacePageStore } from './page-store.js';

/** Bytes of input a batch holds (copied into the kernel's memory); two batches are kept. */
const STAGING_BYTES = 4 << 20;
/** Records per batch. */
const BATCH_RECORDS = 4096;
/**
 * Input bytes copied into the kernel's memory at a time: a record whose
 * payload is not there yet brings in the input from it on, so that the next
 * records' payloads are there already (one copy for many records).
 */
const WINDOW_BYTES = 128 << 10;

/** One batch: a job table, the staging area its payloads are in, and what is needed after its run. */
interface Batch {
  readonly table: JobTable;
  /** Kernel address of the batch's staging area ({@link STAGING_BYTES}, owned by the table). */
  readonly staging: number;
  /** Per job: stream position of a delta's first byte (its errors are reported from there). */
  readonly position: Float64Array;
  /** Per job: end of the page in its block. */
  readonly end: Float64Array;
  /** Per job: the page's block. */
  readonly block: string[];
}

/**
 * Page records applied on a kernel worker pool: {@link RamLoader} queues the
 * stores of an in-place store here instead of making them, and the pool
 * makes them on its threads, the jobs of one page in stream order (lanes
 * keyed by the page's address).
 *
 * Two batches take turns: while the workers run one, the caller parses the
 * next records into the other; when that one is full, the caller joins the
 * first (running its lanes no worker has begun), then starts the second.
 * Payloads are copied into the kernel's memory in windows of the input
 * chunk (one copy for the records inside it, aligned as the input so that it
 * copies whole words), so a batch outlives the chunk it came from. Extents
 * are recorded in stream order after a batch, up to the first delta that
 * failed, whose error is the one the single-thread path throws (same code,
 * message and offset); the batch after it is dropped.
 */
export class ParallelApply {
  private readonly batches: readonly [Batch, Batch];
  /** The batch being filled. */
  private filling: Batch;
  /** The batch the workers run, until joined. */
  private running: Batch | null = null;
  /** Bytes of the filling batch's staging area in use. */
  private used = 0;
  // The input window in the filling batch's staging area: `src[winStart … winEnd)` at `winAt`,
  // `src` being a chunk whose byte 0 is at stream position `winBase`.
  private winSrc: Uint8Array | null = null;
  private winBase = 0;
  private winStart = 0;
  private winEnd = 0;
  private winAt = 0;
  /** The memory {@link ParallelApply.address} saw last, and its address (-1: not the pool's). */
  private lastBytes: Uint8Array | null = null;
  private lastBase = -1;
  /** log2 of the page size: a page's lane key is its address shifted by it. */
  private readonly pageShift: number;

  private constructor(
    private readonly pool: KernelPool,
    private readonly pageSize: number,
  ) {
    this.pageShift = 31 - Math.clz32(pageSize);
    this.batches = [this.batch(), this.batch()];
    this.filling = this.batches[0];
  }

  /** Null when the kernel's memory has no room for the staging areas. */
  static make(pool: KernelPool, pageSize: number): ParallelApply | null {
    const p = new ParallelApply(pool, pageSize);
    if (p.batches[0].staging >= 0 && p.batches[1].staging >= 0) return p;
    p.dispose();
    return null;
  }

  /**
   * The batches on the shared pool of `threads` threads over the kernel's
   * engine, made when first asked for (a loader asks once the store's
   * `parallelAfter` deltas came): null without a pool or room.
   */
  static later(threads: number, pageSize: number): () => ParallelApply | null {
    return () => {
      const pool = getKernelPool(getEngine(), threads);
      return pool === null ? null : ParallelApply.make(pool, pageSize);
    };
  }

  /** Queued jobs (not yet made). */
  get count(): number {
    return this.filling.table.count + (this.running === null ? 0 : this.running.table.count);
  }

  /** The kernel-memory address of a located page, or -1 when it is not in the pool's memory. */
  address(bytes: Uint8Array, at: number): number {
    // (The store's memory of the last page, a segment or a cache, holds the next ones too.)
    if (bytes !== this.lastBytes) {
      this.lastBytes = bytes;
      this.lastBase = this.pool.engine.addressOf(bytes);
    }
    const base = this.lastBase;
    return base < 0 ? -1 : base + at;
  }

  /**
   * Queues a page record for the page at kernel address `dst`: a ZERO
   * record's fill, a PAGE record's copy, an XBZRLE record's decode (validated
   * first unless `checked`). A full batch is started first, after the one
   * running is joined (which throws that one's failed delta).
   */
  add(rec: RamRecord, dst: number, checked: boolean, store: InPlacePageStore): void {
    if (this.filling.table.count >= BATCH_RECORDS) this.rotate(store);
    const kind = rec.kind;
    const at = kind === 'zero' ? 0 : this.payload(rec, store);
    const ps = this.pageSize;
    const b = this.filling;
    const t = b.table;
    const key = dst >>> this.pageShift; // the same for every job on the page (segments are only 4 KiB aligned)
    let j: number;
    if (kind === 'zero') j = t.fill(key, dst, rec.fill, ps);
    else if (kind === 'page') j = t.copy(key, dst, at, ps);
    else if (checked) j = t.apply(key, at, rec.length, dst);
    else j = t.decode(key, at, rec.length, dst, ps);
    b.position[j] = rec.dataPosition;
    b.end[j] = rec.offset + ps;
    b.block[j] = rec.block;
  }

  /**
   * Makes every queued job (the running batch, then the one being filled)
   * and records the pages' extents in `store`. Throws the first failed
   * delta's error, as the single-thread path would have.
   */
  flush(store: InPlacePageStore): void {
    if (this.running !== null) this.complete(this.running, store);
    const b = this.filling;
    if (b.table.count === 0) return;
    this.forgetWindow();
    this.used = 0;
    try {
      this.pool.run(b.table);
    } catch (err) {
      this.drop();
      throw err;
    }
    this.results(b, store);
  }

  dispose(): void {
    const engine = this.pool.engine;
    for (const b of this.batches) {
      if (this.running === b) {
        try {
          this.pool.finish(b.table); // the workers are done with its memory
        } catch {
          // (a trap: nothing to report any more)
        }
      }
      if (b.staging >= 0) engine.give(b.table, b.staging);
      b.table.dispose();
    }
    this.running = null;
  }

  private batch(): Batch {
    const table = this.pool.createTable(BATCH_RECORDS);
    // The staging area is the table's: a batch the pool still runs keeps both.
    const staging = this.pool.engine.take(table, STAGING_BYTES, 64);
    // (The block array is filled up front and overwritten, never emptied: an array grown
    // again for every batch cost an allocation every few records.)
    return { table, staging, position: new Float64Array(BATCH_RECORDS), end: new Float64Array(BATCH_RECORDS), block: new Array<string>(BATCH_RECORDS).fill('') };
  }

  /**
   * The kernel address of the record's payload: in the input window when it
   * is there, else a new window copied from the payload on (a full staging
   * area first starts the batch).
   */
  private payload(rec: RamRecord, store: InPlacePageStore): number {
    const src = rec.src;
    const off = rec.srcOffset;
    const len = rec.length;
    const base = rec.dataPosition - off;
    // The same chunk at the same stream position: the bytes the window holds (a chunk
    // object filled again, or the parser's buffer of a record cut across chunks, is at
    // another position).
    if (src === this.winSrc && base === this.winBase && off >= this.winStart && off + len <= this.winEnd) {
      return this.winAt + (off - this.winStart);
    }
    // Copied so that source and destination share their alignment: a copy into shared
    // memory goes a word at a time only then (else byte by byte, ~8x slower).
    const align = (src.byteOffset + off) & 7;
    let at = ((this.used + 7) & ~7) + align;
    if (at + len > STAGING_BYTES) {
      this.rotate(store);
      at = align;
    }
    const end = Math.min(src.length, off + Math.max(len, Math.min(STAGING_BYTES - at, WINDOW_BYTES)));
    const addr = this.filling.staging + at;
    this.pool.engine.bytes().set(src.subarray(off, end), addr);
    this.used = at + (end - off);
    this.winSrc = src;
    this.winBase = base;
    this.winStart = off;
    this.winEnd = end;
    this.winAt = addr;
    return addr;
  }

  /** Joins the running batch, then starts the filling one on the workers; the other batch is filled next. */
  private rotate(store: InPlacePageStore): void {
    if (this.running !== null) this.complete(this.running, store);
    const b = this.filling;
    this.forgetWindow();
    this.used = 0;
    if (b.table.count === 0) return;
    this.pool.start(b.table);
    this.running = b;
    this.filling = b === this.batches[0] ? this.batches[1] : this.batches[0];
  }

  /** Joins the running batch `b` and records its results. */
  private complete(b: Batch, store: InPlacePageStore): void {
    this.running = null;
    try {
      this.pool.finish(b.table);
    } catch (err) {
      b.table.reset();
      this.drop();
      throw err;
    }
    this.results(b, store);
  }

  /**
   * Records the extents of batch `b` in stream order (one call per run of
   * jobs in the same block: an extent covers those below it) up to its
   * first failed delta, whose error is thrown (the batch being filled is then
   * dropped: its records come after). Empties `b`.
   */
  private results(b: Batch, store: InPlacePageStore): void {
    const t = b.table;
    const n = t.count;
    const words = t.words;
    const blocks = b.block;
    const ends = b.end;
    let block = '';
    let end = 0;
    let failed = -1;
    for (let j = 0, at = t.jobs + JOB_RESULT; j < n; j++, at += JOB_WORDS) {
      if (words[at]! < 0) {
        failed = j;
        break;
      }
      const blk = blocks[j]!;
      const e = ends[j]!;
      if (blk !== block) {
        if (end > 0) store.written(block, end);
        block = blk;
        end = e;
      } else if (e > end) end = e;
    }
    if (end > 0) store.written(block, end);
    if (failed < 0) {
      t.reset();
      return;
    }
    const at = t.jobs + failed * JOB_WORDS;
    const r = words[at + JOB_RESULT]!;
    // The reason, from the same bytes (the address unsigned: the words are signed, the memory may pass 2 GiB).
    const result = checkDelta(this.pool.engine.bytes(), words[at + JOB_A]! >>> 0, words[at + JOB_B]!, this.pageSize);
    const err = corrupt(result < 0 ? result : r, b.position[failed]!);
    t.reset();
    this.drop();
    throw err;
  }

  /** Drops the queued jobs not yet made (after a failure). */
  private drop(): void {
    if (this.running !== null) {
      try {
        this.pool.finish(this.running.table);
      } catch {
        // (the failure reported is the earlier one)
      }
      this.running.table.reset();
      this.running = null;
    }
    this.filling.table.reset();
    this.forgetWindow();
    this.used = 0;
  }

  private forgetWindow(): void {
    this.winSrc = null;
    this.winEnd = 0;
  }
}
