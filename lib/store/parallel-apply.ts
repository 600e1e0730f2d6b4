import { checkDelta, corrupt } from '../codec/decode.js';
import type { JobTable, KernelPool } from '../codec/wasm/pool.js';
import type { InPlacePageStore } from './page-store.js';

/** Bytes of record payloads a batch holds (copied into the kernel's memory). */
const STAGING_BYTES = 8 << 20;
/** Records per batch. */
const BATCH_RECORDS = 2048;

/**
 * Page records applied on a kernel worker pool: {@link RamLoader} queues the
 * stores of an in-place store here instead of making them, and
 * {@link ParallelApply.run} makes them on every thread, the jobs of one page
 * in stream order (lanes keyed by the page's address). Payloads are copied
 * into a staging area of the kernel's memory when queued, so a batch outlives
 * the input chunk it came from. Extents are recorded in stream order after
 * the run, up to the first delta that failed, whose error is the one the
 * single-thread path throws (same code, message and offset).
 */
export class ParallelApply {
  private readonly table: JobTable;
  private readonly staging: number;
  private used = 0;
  private readonly position = new Float64Array(BATCH_RECORDS);
  private readonly source = new Int32Array(BATCH_RECORDS);
  private readonly length = new Int32Array(BATCH_RECORDS);
  private readonly end = new Float64Array(BATCH_RECORDS);
  private readonly block: string[] = [];
  /** Lane keys of the pages with a queued job. */
  private readonly queued = new Set<number>();

  private constructor(
    private readonly pool: KernelPool,
    private readonly pageSize: number,
  ) {
    this.staging = pool.engine.take(this, STAGING_BYTES, 64);
    this.table = pool.createTable(BATCH_RECORDS);
  }

  /** Null when the kernel's memory has no room for the staging area. */
  static make(pool: KernelPool, pageSize: number): ParallelApply | null {
    const p = new ParallelApply(pool, pageSize);
    if (p.staging >= 0) return p;
    p.dispose();
    return null;
  }

  /** True when the next record might not fit: run the batch first. */
  get full(): boolean {
    return this.table.count >= BATCH_RECORDS || this.used + this.pageSize > STAGING_BYTES;
  }

  /** Queued jobs. */
  get count(): number {
    return this.table.count;
  }

  /**
   * True when a job on the page at `dst` is queued: a record for it must be
   * queued too (after it), not made now.
   */
  busy(dst: number): boolean {
    return this.queued.size > 0 && this.queued.has(this.keyOf(dst));
  }

  /** The kernel-memory address of a located page, or -1 when it is not in the pool's memory. */
  address(bytes: Uint8Array, at: number): number {
    const base = this.pool.engine.addressOf(bytes);
    return base < 0 ? -1 : base + at;
  }

  /** Queues a PAGE record: its payload copied to the page at `dst`. */
  page(block: string, offset: number, dst: number, src: Uint8Array, srcOff: number, position: number): void {
    const at = this.stage(src, srcOff, this.pageSize);
    this.note(this.table.copy(this.keyOf(dst), dst, at, this.pageSize), dst, block, offset, position, at, this.pageSize);
  }

  /** Queues a ZERO record: the page at `dst` set to `byte`. */
  fill(block: string, offset: number, dst: number, byte: number, position: number): void {
    this.note(this.table.fill(this.keyOf(dst), dst, byte, this.pageSize), dst, block, offset, position, 0, 0);
  }

  /** Queues an XBZRLE record: validated and decoded into the page at `dst` (`checked`: already validated, applied). */
  delta(block: string, offset: number, dst: number, src: Uint8Array, srcOff: number, len: number, position: number, checked: boolean): void {
    const at = this.stage(src, srcOff, len);
    const key = this.keyOf(dst);
    const j = checked ? this.table.apply(key, at, len, dst) : this.table.decode(key, at, len, dst, this.pageSize);
    this.note(j, dst, block, offset, position, at, len);
  }

  /**
   * Runs the queued jobs, then records each page's extent in `store` in
   * stream order. Throws the first failed delta's error, as the single-thread
   * path would have (pages of later records may have been written).
   */
  run(store: InPlacePageStore): void {
    const table = this.table;
    const n = table.count;
    if (n === 0) return;
    try {
      this.pool.run(table);
      const ps = this.pageSize;
      for (let j = 0; j < n; j++) {
        const r = table.result(j);
        if (r < 0) {
          const mem = this.pool.engine.bytes();
          const result = checkDelta(mem, this.source[j]!, this.length[j]!, ps); // the reason, from the same bytes
          throw corrupt(result < 0 ? result : r, this.position[j]!);
        }
        store.written(this.block[j]!, this.end[j]!);
      }
    } finally {
      table.reset();
      this.used = 0;
      this.block.length = 0;
      this.queued.clear();
    }
  }

  dispose(): void {
    this.table.dispose();
    this.pool.engine.giveAll(this);
  }

  /** The lane key of the page at `dst`: the same for every job on that page (segments are only 4 KiB aligned). */
  private keyOf(dst: number): number {
    return Math.floor(dst / this.pageSize);
  }

  private stage(src: Uint8Array, srcOff: number, len: number): number {
    const at = this.staging + this.used;
    this.pool.engine.bytes().set(src.subarray(srcOff, srcOff + len), at);
    this.used += (len + 63) & ~63;
    return at;
  }

  private note(j: number, dst: number, block: string, offset: number, position: number, source: number, length: number): void {
    this.queued.add(this.keyOf(dst));
    this.position[j] = position;
    this.source[j] = source;
    this.length[j] = length;
    this.end[j] = offset + this.pageSize;
    this.block[j] = block;
  }
}
