import { PageCache, DEFAULT_CACHE_SIZE, UNDECLARED_BLOCK_SPAN } from '../cache/page-cache.js';
import { PageKernel, STEP_MISS, STEP_ZERO } from '../codec/kernel.js';
import { getEngine, type WasmEngine } from '../codec/wasm/engine.js';
import { getKernelPool, hasKernelPool, JOB_PENDING, JOB_TRAPPED, type JobTable, type KernelPool } from '../codec/wasm/pool.js';
import { aloneInRuns, PathTuner, poolForced } from './path-tuner.js';
import { argRangeError, argTypeError, argValueError, XbzrleError } from '../errors.js';
import { encodeName } from '../format/bytes.js';
import { MAX_IDSTR_LENGTH } from '../format/flags.js';
import { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, RecordWriter, type RamBlock, type SlabAllocator } from '../format/record-writer.js';
import { RECORD_HEADER_BYTES, XbzrleStats, type RateMode } from '../stats.js';
import { checkOptions, checkPageSize, checkPositiveInteger, checkThreads } from './options.js';

/** One input of an encoder: a page, or a run of consecutive pages, of one block. */
export interface PageRecord {
  /** Block name (QEMU's RAMBlock idstr), 1 to 255 bytes of UTF-8. */
  block: string;
  /** Byte offset of the first page in the block; a multiple of the page size. */
  offset: number;
  /** The page contents; a positive multiple of the page size. Any `Uint8Array` view. */
  data: Uint8Array;
}

/** Options shared by the Node and the Web encoder streams. */
export interface EncoderOptions {
  /** Page size: a power of two from 1 KiB to 16 KiB. Default 4096, or the size of `cache`. */
  pageSize?: number;
  /** Size of the page cache the encoder creates, in bytes (rounded down to a power-of-two number of pages). Default 64 MiB. Ignored with `cache`. */
  cacheSize?: number;
  /** A {@link PageCache} to use (and share) instead of a new one. Its page size must equal `pageSize`. */
  cache?: PageCache;
  /** Blocks of the memory being sent, written first as a MEM_SIZE record; records for other blocks are then refused. Lengths must be multiples of the page size. */
  blocks?: readonly RamBlock[];
  /** Use XBZRLE deltas (default true); false sends only PAGE and ZERO records and leaves the cache alone. */
  xbzrle?: boolean;
  /**
   * Threads to encode on: the calling thread and `threads - 1` workers
   * sharing the kernel's memory, pages sharded by cache slot. The output and
   * the statistics are byte for byte those of one thread. Default 1 (no
   * workers). A `setCacheSize()` made while a record is being encoded (a
   * paused stream) takes effect at the next 4 MiB batch rather than the next
   * page. Where workers or shared memory are missing (browsers without
   * cross-origin isolation) the single-thread path runs.
   */
  threads?: number;
  /** Output chunks are emitted once this many bytes are pending (and on `sync()`/`end()`). Default 64 KiB, at most 64 MiB. */
  chunkSize?: number;
  /**
   * @internal The driver will feed every input through
   * {@link EncoderCore.feedRound}: the cache it makes keeps its arena out of
   * the kernel's memory (never touched).
   */
  previousRounds?: boolean;
  /**
   * How `stats` computes `cache-miss-rate` and `encoding-rate`: `'cumulative'`
   * (default), over the whole stream, or `'qemu'`, with QEMU's rate periods
   * (recomputed at a `sync()`, or at `end()` without a final sync, more than
   * a second after the current period began; see {@link XbzrleStats.dirtySync}).
   */
  rates?: RateMode;
}

/** A lone UTF-16 surrogate: such names would not survive the trip through UTF-8. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The encoder itself, without a stream around it: QEMU's per-page sender
 * decisions (spec: ram-stream.md §8) over a {@link PageCache}, a
 * {@link PageKernel} and a {@link RecordWriter}, driven by pulling.
 *
 * A driver hands it one input at a time ({@link EncoderCore.feed} a record,
 * {@link EncoderCore.sync} a round's end, {@link EncoderCore.end} the stream's
 * end) and then calls {@link EncoderCore.next} until it returns undefined
 * (the input is used up): each call encodes pages until one output chunk is
 * ready and returns it. The driver asks for the next chunk only when its
 * reader wants more, which is all the backpressure there is. Chunks are
 * handed out between pages, so a synchronous consumer that touches the cache
 * never sees it half updated.
 */
export class EncoderCore {
  readonly pageSize: number;
  readonly cache: PageCache;
  readonly stats: XbzrleStats;
  private readonly writer: RecordWriter;
  private readonly kernel: PageKernel;
  private readonly useXbzrle: boolean;
  /** The slot of the last decision that sends from the cache (SEND_SLOT, SEND_INTO_SLOT). */
  private sendSlot = -1;
  /** The areas of the groups of pages encoded in runs (and the worker pool, with threads), or null. */
  private runs: RunBatch | null = null;
  /**
   * The engine and thread count of the runs, until they are set up (with the
   * first group of pages); null once set up, or when there is no kernel.
   */
  private runPlan: { engine: WasmEngine; threads: number } | null = null;
  /** With the pool: which of the pool and this thread alone encodes the next group (the same records either way). */
  private tuner: PathTuner | null = null;
  /**
   * With threads, while the pool is not started: its engine and thread count.
   * It starts once this thread spent {@link POOL_START_MS} on groups in runs
   * (`aloneMs`), where there is work enough to pay for its start.
   */
  private deferredPool: { engine: WasmEngine; threads: number } | null = null;
  private aloneMs = 0;
  private readonly declared: Map<string, number> | null = null;
  private readonly ownsCache: boolean;
  private readonly validNames = new Set<string>();
  /** Output chunks produced and not yet handed out (a page or a sync makes at most a few). */
  private readonly ready: Uint8Array[] = [];
  private readyHead = 0;
  /** The record being encoded, or null between inputs. */
  private record: PageRecord | null = null;
  private key = 0;
  private pageIndex = 0;
  private pageCount = 0;
  /** Pages from {@link EncoderCore.pageIndex} up to this one are staged in the kernel. */
  private stagedEnd = 0;
  /** How the staged group is encoded: page by page, in runs on this thread, or in runs on the pool (`PATH_…`). */
  private groupPath = PATH_PAGES;
  private stageAt = 0;
  /**
   * True once {@link EncoderCore.feedRound} was used: the cache keeps its
   * bookkeeping only and the driver holds the bytes of its copies.
   */
  private bytesElsewhere = false;
  /** The current record's pages as last fed ({@link EncoderCore.feedRound}), or null. */
  private previous: Uint8Array | null = null;
  private finalStage = false;
  private ended = false;
  /** Set once the cache was changed; cleared when the stream ends cleanly. */
  private touchedCache = false;
  private disposed = false;

  constructor(options: EncoderOptions | undefined, alloc?: SlabAllocator, release?: (slab: Uint8Array, used: number) => void) {
    const opts = checkOptions(options);
    const cache = opts.cache;
    if (cache !== undefined && !PageCache.isPageCache(cache)) throw argTypeError('options.cache', 'a PageCache', cache);
    const pageSize = checkPageSize(opts.pageSize ?? cache?.pageSize ?? 4096, 'options.pageSize');
    if (cache !== undefined && cache.pageSize !== pageSize) {
      throw argValueError('options.cache', `must have the stream's page size (${pageSize})`, cache.pageSize);
    }
    const chunkSize = checkPositiveInteger(opts.chunkSize ?? DEFAULT_CHUNK_SIZE, 'options.chunkSize', MAX_CHUNK_SIZE);
    if (opts.xbzrle !== undefined && typeof opts.xbzrle !== 'boolean') throw argTypeError('options.xbzrle', 'a boolean', opts.xbzrle);
    const blocks = opts.blocks === undefined ? null : checkBlocks(opts.blocks, pageSize);
    this.pageSize = pageSize;
    this.cache = cache ?? new PageCache({ size: opts.cacheSize ?? DEFAULT_CACHE_SIZE, pageSize, plainArena: opts.previousRounds === true });
    this.ownsCache = cache === undefined;
    const threads = checkThreads(opts.threads);
    // The pool works in the arena's memory; an arena kept out of it (previousRounds) is never read.
    const poolEngine = opts.previousRounds === true && cache === undefined ? getEngine() : this.cache.arenaEngine;
    // The pool starts once there is work for it (startRuns, encodePages), not before: an
    // encoder given no pages, or little work, starts no thread.
    const pooled = threads > 1 && poolEngine !== null && poolEngine.shared;
    this.kernel = new PageKernel(pageSize, pooled ? BATCH_BYTES / pageSize : ALONE_PAGES);
    if (pooled) this.runPlan = { engine: poolEngine, threads };
    else if (this.kernel.engine !== null && this.kernel.engine === poolEngine) this.runPlan = { engine: poolEngine, threads: 1 };
    this.useXbzrle = opts.xbzrle ?? true;
    this.stats = new XbzrleStats(pageSize, { rates: opts.rates });
    this.stats.cacheSize = this.cache.size;
    this.writer = new RecordWriter({ pageSize, chunkSize, alloc, release }, (chunk) => this.ready.push(chunk));
    if (blocks !== null) {
      this.declared = new Map(blocks.map((b) => [b.id, b.length]));
      this.cache.declareBlocks(blocks);
      this.writer.memSize(blocks);
      this.stats.countMemSize();
    }
  }

  /** The counters, with the cache size as it is now (until the encoder is disposed). */
  currentStats(): XbzrleStats {
    if (!this.disposed) this.stats.cacheSize = this.cache.size;
    return this.stats;
  }

  /**
   * Takes a page record: checks it and prepares its block. Its pages are
   * encoded by the following {@link EncoderCore.next} calls.
   * @throws XbzrleError `ERR_INVALID_RECORD`
   */
  feed(chunk: unknown): void {
    this.checkIdle();
    if (this.bytesElsewhere) throw new Error('EncoderCore: feed() after feedRound() (the cache holds no bytes)');
    this.take(this.checkRecord(chunk));
  }

  /**
   * @internal {@link EncoderCore.feed} for a driver that can give a record's
   * pages again as they were when last fed (a file read again): `previous`
   * holds those bytes (as long as the record's data), or is null when none
   * of them was fed before. The cache then keeps only its bookkeeping (which
   * page each slot holds, ages, hits, misses) and never copies a page in:
   * `previous` stands in for its copies, which are exactly those bytes — a
   * page the cache holds is the page as last fed, delta applied or overflow
   * copied, in the final stage too (a hit's entry is dropped there). Same
   * output and statistics as `feed`, without the cache's memory. Every page
   * must be fed in every round (a page left out would be stale), and every
   * input must come through this method, into a cache of the encoder's own.
   * `unknown` (a byte per page; 1: `previous` is not that page as last fed,
   * e.g. a file written between its two reads) drops those pages' cache
   * entries first: they go as misses, whole.
   */
  feedRound(chunk: unknown, previous: Uint8Array | null, unknown: Uint8Array | null = null): void {
    this.checkIdle();
    if (this.sharesCache) throw new Error('EncoderCore: feedRound() needs a cache of its own');
    if (!this.bytesElsewhere && this.cache.count > 0) throw new Error('EncoderCore: feedRound() after feed()');
    const record = this.checkRecord(chunk);
    if (previous !== null && (!(previous instanceof Uint8Array) || previous.length !== record.data.length)) {
      throw new Error('EncoderCore: feedRound() needs the previous pages, as many bytes as the record');
    }
    this.bytesElsewhere = true;
    this.take(record);
    this.previous = previous;
    if (unknown !== null) {
      if (unknown.length !== this.pageCount) throw new Error('EncoderCore: feedRound() needs a flag per page of the record');
      for (let i = 0; i < unknown.length; i++) if (unknown[i] !== 0) this.cache.invalidate(this.key + i * this.pageSize);
    }
  }

  private take(record: PageRecord): void {
    let range = this.cache.block(record.block, this.declared?.get(record.block));
    // A shared cache may know the block with a shorter declared length: grow it
    // (the cache moves it if needed) so its keys never run into the next block.
    const end = record.offset + record.data.length;
    if (end > range.span) range = this.cache.block(record.block, end);
    this.record = record;
    this.previous = null;
    this.key = range.base + record.offset;
    this.pageIndex = 0;
    this.stagedEnd = 0;
    this.pageCount = record.data.length / this.pageSize;
  }

  /**
   * Ends a dirty-sync round: EOS, flush, next cache generation. After
   * `final` (QEMU's last stage) the cache is no longer filled or refreshed.
   */
  sync(final: boolean): void {
    this.checkIdle();
    this.writer.eos();
    this.stats.countEos();
    this.stats.dirtySyncCount++;
    // QEMU's last dirty sync starts its final stage; none follow it.
    if (!this.finalStage) this.stats.dirtySync();
    this.writer.flush();
    this.cache.nextGeneration();
    if (final) this.finalStage = true;
    // A new round's pages may cost nothing like this one's (a first round: all misses and
    // page faults): the pool and the thread alone are measured again.
    this.tuner?.reset();
  }

  /** Ends the stream: a final EOS and a flush. Later inputs are refused. */
  end(): void {
    this.checkIdle();
    this.ended = true;
    // Ended without sync({ final: true }): QEMU's completion still begins with a dirty sync.
    if (!this.finalStage) this.stats.dirtySync();
    this.writer.eos();
    this.stats.countEos();
    this.writer.flush();
  }

  /**
   * The next output chunk: encodes pages of the current record until a chunk
   * is ready. Undefined when the input is used up (feed the next one).
   */
  next(): Uint8Array | undefined {
    const ready = this.ready;
    if (this.readyHead === ready.length && this.record !== null) this.encodePages();
    if (this.readyHead === ready.length) return undefined;
    const chunk = ready[this.readyHead++]!;
    if (this.readyHead === ready.length) {
      ready.length = 0;
      this.readyHead = 0;
    }
    this.stats.countTransferred(chunk.length);
    return chunk;
  }

  /**
   * Releases the kernel's memory, and the cache if the encoder made it. Unless
   * `delivered` (the stream finished and its reader took every chunk), a cache
   * it shares is emptied: the receiver may not have got the pages it holds.
   */
  dispose(delivered = false): void {
    if (this.disposed) return;
    if (this.touchedCache && !delivered) this.cache.clear();
    this.stats.cacheSize = this.cache.size;
    this.disposed = true;
    this.record = null;
    this.kernel.dispose();
    this.runs?.dispose();
    if (this.ownsCache) this.cache.dispose();
  }

  /** True when the cache was given (`options.cache`), not made by this encoder. */
  get sharesCache(): boolean {
    return !this.ownsCache;
  }

  /** True after {@link EncoderCore.dispose}. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  private checkIdle(): void {
    // Misuse by a driver (a bug, not bad input).
    if (this.disposed) throw new Error('EncoderCore: used after dispose()');
    if (this.ended) throw new Error('EncoderCore: input after end()');
    if (this.record !== null || this.readyHead < this.ready.length) throw new Error('EncoderCore: input before the previous one was used up (call next() until it returns undefined)');
  }

  /** Encodes pages of the current record until an output chunk is ready or the record is done. */
  private encodePages(): void {
    const record = this.record!;
    const ps = this.pageSize;
    const kernel = this.kernel;
    const ready = this.ready;
    const count = this.pageCount;
    let i = this.pageIndex;
    const tuner = this.tuner;
    const first = i;
    const t0 = tuner === null ? 0 : performance.now();
    let pooled = 0;
    let pooledMs = 0;
    while (i < count) {
      if (i === this.stagedEnd) {
        if (this.deferredPool !== null && this.aloneMs >= poolStartMs) this.startDeferredPool();
        // Staged once per group: a pause for the reader resumes in the same group.
        const n = Math.min(count - i, kernel.stagePages);
        kernel.stage(record.data, i * ps, n);
        this.stagedEnd = i + n;
        this.stageAt = kernel.srcOff - i * ps;
        // Pages fed with no previous pages (bytes elsewhere, a first round) are all misses:
        // a zero test each and their records, which this thread writes anyway, page by page
        // (and no time of theirs counts towards starting the pool).
        const runs = this.runs ?? this.startRuns();
        const batch = this.bytesElsewhere && this.previous === null ? null : runs;
        // With threads, the tuner picks the pool or this thread alone; alone, runs (page by page
        // only where a test forces it: the reference path).
        if (batch === null || kernel.src !== batch.engine.bytes() || !this.arenaUsable(batch) || this.previousAddress(batch) === -1) this.groupPath = PATH_PAGES;
        else if (batch.pool !== null && this.tuner!.usePool()) this.groupPath = PATH_POOL;
        else this.groupPath = aloneInRuns() ? PATH_RUNS : PATH_PAGES;
      }
      if (this.groupPath !== PATH_PAGES) {
        // In runs: on the pool, the rest of the group at once, as far as it spans distinct cache
        // slots; alone, up to the page after which a chunk is emitted.
        const onPool = this.groupPath === PATH_POOL;
        const b0 = performance.now();
        const deferred = this.deferredPool !== null;
        const sent = deferred ? this.deltasAndPages() : 0;
        const m = this.encodeBatch(record, i, Math.min(this.stagedEnd - i, this.cache.slots, this.runs!.pages), onPool);
        // Before the pool starts: the time counts in proportion to the pages sent as a delta or
        // whole. A page found unchanged or zero costs a compare or a zero test, bound by memory
        // more than by a core (2 threads: 1.08 × one on unchanged rounds, 1.2 × for C).
        if (deferred) this.aloneMs += m === 0 ? 0 : ((performance.now() - b0) * (this.deltasAndPages() - sent)) / m;
        else if (onPool) {
          const ms = performance.now() - b0;
          const pool = this.runs!.pool!;
          // (A batch run while a worker was still starting says nothing of the pool's speed.)
          if (pool.ready >= pool.threads - 1) this.tuner!.record(true, m, ms);
          pooled += m;
          pooledMs += ms;
        }
        i += m;
        if (ready.length > 0) break;
        continue;
      }
      this.encodePage(record.block, record.offset + i * ps, this.key + i * ps, kernel.src, this.stageAt + i * ps, i * ps);
      i++;
      if (ready.length > 0) break;
    }
    // The pages done on this thread alone (page by page), for the tuner (none timed before it started).
    if (tuner !== null) tuner.record(false, i - first - pooled, performance.now() - t0 - pooledMs);
    this.pageIndex = i;
    if (i === count) {
      this.record = null;
      this.previous = null;
    }
  }

  /** XBZRLE and PAGE records written so far (the pages that took work to send). */
  private deltasAndPages(): number {
    const r = this.stats.records;
    return r.XBZRLE + r.PAGE;
  }

  /**
   * Sets up the runs planned (once; null when there is no kernel, or no room
   * in its memory). With threads, the worker pool is used at once when it is
   * made already (by an earlier encoder over the same memory); otherwise the
   * groups run on this thread alone until they took {@link POOL_START_MS}
   * ({@link EncoderCore.startDeferredPool}). A pool that cannot start (no
   * worker threads here) leaves runs on this thread alone.
   */
  private startRuns(): RunBatch | null {
    const plan = this.runPlan;
    if (plan === null) return null;
    this.runPlan = null;
    if (plan.threads > 1 && (hasKernelPool(plan.engine, plan.threads) || poolForced())) this.runs = this.poolBatch(plan);
    else {
      // Alone; with threads, until work enough came (a pool's areas, 4 MiB of records, cost ~1000 page faults to set up).
      this.runs = RunBatch.make(plan.engine, null, this.pageSize, ALONE_PAGES);
      if (plan.threads > 1 && this.runs !== null) this.deferredPool = plan;
    }
    return this.runs;
  }

  /**
   * Starts the pool deferred by {@link EncoderCore.startRuns}, between two
   * groups (no batch in flight): its batch areas replace those of this
   * thread alone (given back first: the new ones may reuse their memory).
   */
  private startDeferredPool(): void {
    const plan = this.deferredPool!;
    this.deferredPool = null;
    this.runs?.dispose();
    this.runs = this.poolBatch(plan);
  }

  /**
   * The batch areas with the pool of `plan` (started if need be), and the
   * tuner; where there is no pool, or no room for its areas, this thread's
   * alone. Null: no room for either.
   */
  private poolBatch(plan: { engine: WasmEngine; threads: number }): RunBatch | null {
    const pool = getKernelPool(plan.engine, plan.threads);
    const batch = pool !== null && this.kernel.engine === pool.engine ? RunBatch.make(plan.engine, pool, this.pageSize, BATCH_BYTES / this.pageSize) : null;
    if (batch === null) return RunBatch.make(plan.engine, null, this.pageSize, ALONE_PAGES);
    this.tuner = new PathTuner();
    return batch;
  }

  /** True when the kernel (and the pool's threads) can work on the cache's arena (or never need it: bytes elsewhere). */
  private arenaUsable(batch: RunBatch): boolean {
    return this.bytesElsewhere || (this.cache.arenaPtr >= 0 && this.cache.arenaEngine === batch.engine);
  }

  /**
   * Where the previous pages ({@link EncoderCore.feedRound}) are in the pool's
   * memory: -2 without them, -1 when they are elsewhere (the pages then go one
   * by one, each copied in).
   */
  private previousAddress(batch: RunBatch): number {
    const previous = this.previous;
    return previous === null ? -2 : batch.engine.addressOf(previous);
  }

  /**
   * The pages of {@link EncoderCore.encodePage} for `count` staged pages from
   * `first` (distinct cache slots), in runs of consecutive pages: (1) every
   * page's cache slot peeked, the address of its cached copy noted for the
   * kernel; (2) each run stepped and its records written (CONTINUE, no name)
   * in one kernel call (`step_run`), into the batch's record area — `onPool`,
   * the runs are jobs started on the pool's workers; (3) run by run,
   * in page order (with threads, as each run's result comes, this thread
   * running the next unclaimed lane itself when it is not there yet), the
   * run's pages taken ({@link EncoderCore.takeRun}). A page's step and
   * decision touch its own slot alone (the slots are distinct), and the
   * records are the bytes the writer would write page by page, cut into the
   * same chunks. Alone, the run stops at the page after which the writer
   * emits a chunk, as page by page (a cache resized, or stats read, between
   * two chunks sees the same state); on the pool the whole batch is done.
   * Returns the pages done.
   */
  private encodeBatch(record: PageRecord, first: number, count: number, onPool: boolean): number {
    const ps = this.pageSize;
    const cache = this.cache;
    const batch = this.runs!;
    const { steps, words, engine } = batch;
    const pool = onPool ? batch.pool : null;
    const xbzrle = this.useXbzrle;
    const elsewhere = this.bytesElsewhere;
    const update = xbzrle && !this.finalStage && !elsewhere;
    const arena = cache.arenaPtr;
    const previous = this.previousAddress(batch);
    const prevs = batch.prevs >>> 2;
    const slots = batch.slot;
    this.touchedCache ||= xbzrle;
    if (xbzrle) cache.peekRun(this.key + first * ps, count, slots);
    else slots.fill(-1, 0, count);
    for (let k = 0; k < count; k++) {
      const slot = slots[k]!;
      let copy = 0;
      if (slot >= 0) {
        if (!elsewhere) copy = arena + slot * ps;
        else if (previous >= 0) copy = previous + (first + k) * ps;
        else throw new Error('EncoderCore: feedRound() without the previous pages of a cached page');
        if (update) cache.markWritten(slot); // the step may write the cached copy
      }
      words[prevs + k] = copy;
    }
    if (pool === null) {
      // Alone, one run, stopped where the writer emits a chunk.
      const budget = Math.max(0, this.writer.room - this.writer.headExtra(record.block));
      const bytes = engine.stepRun(batch.prevs, this.stageAt + first * ps, count, ps, update, batch.records, batch.results, batch.scratch, record.offset + first * ps, budget);
      return this.takeRun(record, first, 0, count, batch.records, bytes, budget);
    }
    // Runs of `per` pages, at most MAX_RUNS of them: a job per run, not per page, so that the
    // threads share a cache line of jobs or results once per run.
    const per = Math.ceil(count / MAX_RUNS);
    const runs = Math.ceil(count / per);
    const stride = per * (ps + RUN_RECORD_EXTRA);
    steps!.reset();
    for (let j = 0; j < runs; j++) {
      const k0 = j * per;
      const at = first + k0;
      // Keyed by the run's place in the batch: lanes are claimed in page order, the order results are read in.
      steps!.stepRun(j, batch.prevs + 4 * k0, this.stageAt + at * ps, Math.min(per, count - k0), ps, update, batch.records + j * stride, batch.results + 4 * k0, batch.scratch + steps!.laneOf(j) * ps, record.offset + at * ps);
    }
    pool.start(steps!);
    try {
      for (let j = 0; j < runs; j++) {
        let bytes = steps!.settled(j);
        // Not there yet: this thread runs the next lane no thread has claimed; with none left,
        // it waits for the lanes the workers are running (the batch's last ones).
        while (bytes === JOB_PENDING) {
          if (pool.help(steps!)) {
            bytes = steps!.settled(j);
            continue;
          }
          pool.finish(steps!);
          bytes = steps!.settled(j);
          if (bytes === JOB_PENDING) throw new Error('EncoderCore: a batch on the pool ended without the result of a run'); // (a guard: every job of a joined batch has run)
        }
        if (bytes === JOB_TRAPPED) break; // finish() throws
        this.takeRun(record, first, j * per, Math.min(count, (j + 1) * per), batch.records + j * stride, bytes, -1);
      }
    } catch (err) {
      // Every lane done before the batch's memory is used again; the error reported is this one.
      try {
        pool.finish(steps!);
      } catch {
        // (a trapped job of the same batch: the first error stands)
      }
      throw err;
    }
    pool.finish(steps!); // every lane done before the batch's memory is used again (throws a trapped job)
    return count;
  }

  /**
   * The pages `k0` to `end` (exclusive) of a batch from `first`, stepped by a
   * run whose `bytes` of records start at `start`: the hits (a delta, or
   * nothing to send) outside the final stage, the common outcome, accounted
   * for the run at once; the other pages through {@link EncoderCore.decide}
   * (the same as page by page), a missed page copied into the slot it just
   * claimed from its record (so what is cached is what is sent); the records
   * appended to the writer in one copy per output chunk, the first record of
   * a block after another's written by the writer itself, with its name.
   * With `budget` ≥ 0 (the kernel's, see `step_run`), the run ended at the
   * first record that brought its bytes to `budget`. Returns the index after
   * the last page taken.
   */
  private takeRun(record: PageRecord, first: number, k0: number, end: number, start: number, bytes: number, budget: number): number {
    const ps = this.pageSize;
    const cache = this.cache;
    const stats = this.stats;
    const writer = this.writer;
    const batch = this.runs!;
    const { words } = batch;
    const slots = batch.slot;
    const results = batch.results >>> 2;
    const block = record.block;
    const fast = this.useXbzrle && !this.finalStage;
    const mem = batch.engine.bytes(); // (the writer may grow the memory: a view of all of it, now)
    let pos = start;
    let run = pos; // the records not yet given to the writer start here
    let room = writer.room;
    let unchanged = 0;
    let deltas = 0;
    let deltaBytes = 0;
    for (let k = k0; k < end; k++) {
      const r = words[results + k]!;
      const slot = slots[k]!;
      let act: number;
      if (fast && slot >= 0 && r >= 0) {
        if (r === 0) {
          unchanged++;
          continue;
        }
        act = SEND_DELTA;
      } else {
        act = this.decide(r, slot, this.key + (first + k) * ps);
        if (act === SEND_NOTHING) continue;
      }
      const len = r > 0 ? r + RUN_RECORD_EXTRA : r === STEP_ZERO ? ZERO_RECORD_BYTES : ps + RECORD_HEADER_BYTES;
      if (act === SEND_INTO_SLOT) cache.store(this.sendSlot, mem, pos + RECORD_HEADER_BYTES);
      const named = !writer.continues(block);
      if (named) {
        // The first page record of this block after another's: the writer writes it, with the name.
        const offset = record.offset + (first + k) * ps;
        if (act === SEND_ZERO) writer.zero(block, offset, 0);
        else if (act === SEND_DELTA) stats.countDelta(writer.xbzrle(block, offset, mem, pos + RUN_RECORD_EXTRA, r));
        else writer.page(block, offset, mem, pos + RECORD_HEADER_BYTES);
      } else if (act === SEND_DELTA) {
        // (Outside the final stage every delta is a hit of the fast branch: counted with the run.)
        if (fast) {
          deltas++;
          deltaBytes += len;
        } else stats.countDelta(len);
      }
      if (act === SEND_ZERO) stats.countZero();
      else if (act !== SEND_DELTA) stats.countPage();
      pos += len;
      if (named) {
        run = pos; // (written by the writer already)
        room = writer.room;
      } else if (pos - run >= room) {
        // Cut where the writer would emit a chunk record by record: the same chunks.
        writer.records(mem, run, pos - run);
        run = pos;
        room = writer.room;
      }
      if (budget >= 0 && pos - start >= budget) {
        end = k + 1; // where the kernel stopped
        break;
      }
    }
    // (After the loop: the run may have ended early. Slots are distinct, so the order does not matter.)
    if (fast) stats.countHits(cache.accountHits(slots, words, results, k0, end), unchanged, deltas, deltaBytes);
    if (pos > run) writer.records(mem, run, pos - run);
    if (pos - start !== bytes) throw new Error(`EncoderCore: a run's records (${bytes} bytes) disagree with its pages' results (${pos - start})`);
    return end;
  }

  /** QEMU's per-page decision (ram-stream.md §8), for the page at `data[at]`, sent now. */
  private encodePage(block: string, offset: number, key: number, data: Uint8Array, at: number, inRecord: number): void {
    const xbzrle = this.useXbzrle;
    const cache = this.cache;
    this.touchedCache ||= xbzrle;
    // Zero test, encode against the cached copy and cache update in one kernel
    // step; the slot is only peeked here, and accounted in decide().
    const slot = xbzrle ? cache.peekSlot(key) : -1;
    let r: number;
    if (this.bytesElsewhere) {
      // The copy is the page as last fed, which the driver gave (feedRound).
      if (slot >= 0 && this.previous === null) throw new Error('EncoderCore: feedRound() without the previous pages of a cached page');
      r = this.kernel.stepOn(slot < 0 ? null : this.previous, inRecord, data, at);
    } else {
      r = this.kernel.step(cache, slot, data, at, xbzrle && !this.finalStage);
    }
    const act = this.decide(r, slot, key);
    const writer = this.writer;
    const stats = this.stats;
    switch (act) {
      case SEND_ZERO:
        writer.zero(block, offset, 0);
        stats.countZero();
        return;
      case SEND_PAGE:
        writer.page(block, offset, data, at);
        stats.countPage();
        return;
      case SEND_INTO_SLOT:
        cache.store(this.sendSlot, data, at);
        writer.page(block, offset, cache.arena, this.sendSlot * this.pageSize);
        stats.countPage();
        return;
      case SEND_SLOT:
        writer.page(block, offset, cache.arena, this.sendSlot * this.pageSize);
        stats.countPage();
        return;
      case SEND_DELTA:
        stats.countDelta(writer.xbzrle(block, offset, this.kernel.delta, this.kernel.deltaOff, r));
        return;
    }
  }

  /**
   * QEMU's sender decision (ram-stream.md §8) for a page whose kernel step
   * gave `r` against `slot` (-1: not cached), with the cache's bookkeeping
   * and the hit, miss, skip and overflow counts; returns what to send
   * (`SEND_…`; for the slot actions, the slot is in `sendSlot`). An all-zero
   * page goes as ZERO and its entry becomes a zero page (QEMU caches zero
   * pages even in the last stage); a miss as PAGE, the page entering the
   * cache (outside the last stage) and sent from the cached copy, as QEMU
   * does, so what is sent and what is cached are the same bytes even if
   * another thread writes the page (allocPages memory); an unchanged hit
   * sends nothing; a hit with a delta as XBZRLE; an overflow (or, with 16 KiB
   * pages, a page in which every byte changed) as PAGE from the slot, which
   * the step made the page. In the last stage a hit's entry is dropped.
   */
  private decide(r: number, slot: number, key: number): number {
    const cache = this.cache;
    const stats = this.stats;
    if (r === STEP_ZERO) {
      if (this.useXbzrle) cache.insertZero(key);
      return SEND_ZERO;
    }
    if (!this.useXbzrle) return SEND_PAGE;
    cache.account(slot); // the lookup: a hit refreshes the generation; counts the hit or the miss
    if (r === STEP_MISS) {
      stats.cacheMiss++;
      if (this.finalStage) return SEND_PAGE;
      // Bytes elsewhere: the slot is claimed, its copy is the page the driver gives next round.
      if (this.bytesElsewhere) {
        cache.claim(key, cache.generation);
        return SEND_PAGE;
      }
      const into = cache.claimSlot(key);
      if (into < 0) return SEND_PAGE;
      this.sendSlot = into;
      return SEND_INTO_SLOT;
    }
    stats.xbzrlePages++; // QEMU counts a page each time the cache is hit
    if (r === 0) {
      stats.skipped++;
      return SEND_NOTHING;
    }
    if (this.finalStage) cache.invalidate(key);
    if (r > 0) return SEND_DELTA;
    stats.overflow++;
    stats.xbzrleBytes += this.pageSize;
    if (this.finalStage || this.bytesElsewhere) return SEND_PAGE;
    this.sendSlot = slot;
    return SEND_SLOT;
  }

  private checkRecord(chunk: unknown): PageRecord {
    const bad = (why: string): never => {
      throw new XbzrleError('ERR_INVALID_RECORD', `invalid page record: ${why}`);
    };
    if (chunk === null || typeof chunk !== 'object') bad('expected an object { block, offset, data }');
    const { block, offset, data } = chunk as Partial<PageRecord>;
    const ps = this.pageSize;
    if (typeof block !== 'string') return bad('"block" must be a string');
    if (!this.validNames.has(block)) {
      const nameLength = encodeName(block).length;
      if (nameLength === 0 || nameLength > MAX_IDSTR_LENGTH || LONE_SURROGATE.test(block)) {
        bad(`block name ${JSON.stringify(block)} must be 1 to ${MAX_IDSTR_LENGTH} bytes of well-formed UTF-8`);
      }
      this.validNames.add(block);
    }
    if (!(data instanceof Uint8Array)) return bad('"data" must be a Uint8Array');
    if (data.length === 0 || data.length % ps !== 0) bad(`data length ${data.length} is not a positive multiple of the page size ${ps}`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return bad(`offset ${String(offset)} is not a non-negative integer`);
    if (offset % ps !== 0) bad(`offset ${offset} is not a multiple of the page size ${ps}`);
    const limit = this.declared === null ? UNDECLARED_BLOCK_SPAN : this.declared.get(block);
    if (limit === undefined) bad(`block ${JSON.stringify(block)} is not among the declared blocks`);
    if (offset + data.length > limit!) {
      bad(`pages ${offset}..${offset + data.length} run past the end of block ${JSON.stringify(block)} (${limit} bytes)`);
    }
    return { block, offset, data };
  }
}

function checkBlocks(blocks: unknown, pageSize: number): RamBlock[] {
  if (!Array.isArray(blocks)) throw argTypeError('options.blocks', 'an array of { id, length }', blocks);
  const seen = new Set<string>();
  const out: RamBlock[] = [];
  let total = 0;
  for (const [i, b] of (blocks as unknown[]).entries()) {
    const { id, length } = (b ?? {}) as Partial<RamBlock>;
    if (typeof id !== 'string') throw argTypeError(`options.blocks[${i}].id`, 'a string', id);
    const bytes = encodeName(id).length;
    if (bytes === 0 || bytes > MAX_IDSTR_LENGTH || LONE_SURROGATE.test(id)) {
      throw argRangeError(`options.blocks[${i}].id`, `1 to ${MAX_IDSTR_LENGTH} bytes of well-formed UTF-8`, id);
    }
    if (seen.has(id)) throw argValueError(`options.blocks[${i}].id`, 'must be unique', id);
    seen.add(id);
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0 || length % pageSize !== 0) {
      throw argRangeError(`options.blocks[${i}].length`, `a positive multiple of the page size (${pageSize})`, length);
    }
    total += length;
    out.push({ id, length });
  }
  if (total > Number.MAX_SAFE_INTEGER) throw argRangeError('options.blocks', 'a total length below 2^53', total);
  return out;
}

/**
 * Bytes of pages per batch on the pool (and staged at a time there): large
 * enough that waking the workers (15-35 µs on a VM) is small next to the work.
 */
const BATCH_BYTES = 4 << 20;
/**
 * Time this thread spends on groups in runs before an encoder with threads
 * starts its worker pool (when no encoder over the same memory made it yet),
 * counted for the pages sent as deltas or whole (not for those found
 * unchanged or zero, a compare or a zero test each): about what a
 * worker's start costs a core (~50 ms on the 2-core VM). A job of less work
 * than this gains nothing from workers; on 2 cores their start took the core
 * that reads the files (`encode` of two 512 MiB images, 36 ms of encoding:
 * 560 ms with one thread, 640 ms with a pool started with the first round;
 * of two 1 GiB images, 72 ms, 95 % of it on unchanged pages: 783 ms with
 * one thread, 856 ms with the pool started after 50 ms of it). A job of
 * pages to send loses at most this to the wait.
 */
const POOL_START_MS = 50;
let poolStartMs = POOL_START_MS;

/** @internal For tests: the time alone after which a pool starts (0: at the first group boundary after the runs were set up); `undefined` restores {@link POOL_START_MS}. */
export function setPoolStartMs(ms: number | undefined): void {
  poolStartMs = ms ?? POOL_START_MS;
}
// How a staged group is encoded (EncoderCore.groupPath).
const PATH_PAGES = 0;
const PATH_RUNS = 1;
const PATH_POOL = 2;
// What a page's decision sends (see EncoderCore.decide).
const SEND_NOTHING = 0;
const SEND_ZERO = 1;
/** PAGE from the page itself. */
const SEND_PAGE = 2;
/** PAGE from its cache slot (`sendSlot`), which the step made the page (overflow). */
const SEND_SLOT = 3;
/** PAGE, after the page is copied into the slot it just claimed (`sendSlot`), from there. */
const SEND_INTO_SLOT = 4;
const SEND_DELTA = 5;

/** Pages of a group encoded on the calling thread alone (staged at a time, one run). */
const ALONE_PAGES = 64;
/** Most runs (jobs) a batch on the pool is cut into. */
const MAX_RUNS = 64;
/** An XBZRLE record's bytes besides its delta: header, encoding byte, 2-byte length (also the most a run's record takes beyond a page). */
const RUN_RECORD_EXTRA = RECORD_HEADER_BYTES + 3;
/** A ZERO record: header and fill byte. */
const ZERO_RECORD_BYTES = RECORD_HEADER_BYTES + 1;

/**
 * What a group of pages encoded in runs needs, in the kernel's memory: each
 * page's cached copy's address and step result, a delta page per lane (one
 * alone), room for every page's record; and each page's peeked slot. With
 * threads, the pool and its job table (a job per run).
 */
class RunBatch {
  readonly slot: Int32Array;
  /** Addresses (-1: no room) of the Int32 per page areas and of the delta pages and records. */
  readonly prevs: number;
  readonly results: number;
  readonly scratch: number;
  readonly records: number;
  /** The kernel's memory as Int32s, covering the areas above. */
  readonly words: Int32Array;
  readonly steps: JobTable | null;

  private constructor(
    readonly engine: WasmEngine,
    readonly pool: KernelPool | null,
    /** Pages a batch holds at most. */
    readonly pages: number,
    pageSize: number,
  ) {
    this.steps = pool === null ? null : pool.createTable(MAX_RUNS);
    this.prevs = engine.take(this, 4 * pages, 64);
    this.results = engine.take(this, 4 * pages, 64);
    this.scratch = engine.take(this, (this.steps?.lanes ?? 1) * pageSize, 64);
    this.records = engine.take(this, pages * (pageSize + RUN_RECORD_EXTRA), 64);
    this.words = new Int32Array(engine.bytes().buffer);
    this.slot = new Int32Array(pages);
  }

  /** Null when the kernel's memory has no room for the areas. */
  static make(engine: WasmEngine, pool: KernelPool | null, pageSize: number, pages: number): RunBatch | null {
    let batch: RunBatch;
    try {
      batch = new RunBatch(engine, pool, pages, pageSize);
    } catch {
      return null; // the job table found no room (it takes its memory first): page by page
    }
    if (batch.prevs >= 0 && batch.results >= 0 && batch.scratch >= 0 && batch.records >= 0) {
      // Touched now, once: the first batch's steps would otherwise pay a page fault per page of
      // its records (~12 µs each on a VM), and the tuner take the pool for slow.
      engine.bytes().fill(0, batch.records, batch.records + pages * (pageSize + RUN_RECORD_EXTRA));
      return batch;
    }
    batch.dispose();
    return null;
  }

  dispose(): void {
    this.engine.giveAll(this);
    this.steps?.dispose();
  }
}
