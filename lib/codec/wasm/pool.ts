import { KERNEL_SHARED } from './kernel-wasm.js';
import type { KernelExports, WasmEngine } from './engine.js';
import { fillInto } from '../copy.js';

// The kernel worker pool: batches of kernel operations (zero tests, encoder
// steps, copies, decodes) over the engine's shared memory, run on N threads
// and synchronous from the caller's point of view.
//
// A batch is a JobTable: jobs in the engine's own memory, each in a lane
// (key mod lanes); the jobs of one lane run in the order they were added, on
// one thread. `KernelPool.run` publishes the table, wakes the workers, claims
// lanes itself like any worker, then waits for the lanes others claimed.
// Lanes are claimed one at a time from a shared counter, so a worker that is
// slow to wake (a busy machine) costs nothing: the caller does its share.
// No promise, no message and no allocation per batch.

/** Job kind: `is_zero(a = ptr, b = len)`; result 1 when all zero, else 0. */
export const OP_IS_ZERO = 1;
/** Job kind: `step(a = prev, b = cur, c = out, d = n, e = update)`; result as {@link WasmEngine.step} (-3 zero, -4 no cached copy, else encode's). */
export const OP_STEP = 2;
/** Job kind: `copy(a = dst, b = src, c = len)`; result 0. */
export const OP_COPY = 3;
/** Job kind: `decode(a = src, b = slen, c = dst, d = dlen)`: validates, then applies; result ≥ 0 on success, else -1 - (failing position), nothing written. A failure. */
export const OP_DECODE = 4;
/** Job kind: `apply(a = src, b = slen, c = dst)` of a delta known to be valid; result 0. */
export const OP_APPLY = 5;
/** Job kind: `encode(a = prev, b = cur, c = slen, d = out, e = dlen)`; result as the kernel's encode. */
export const OP_ENCODE = 6;
/** Job kind: fill `c` bytes at `a` with the byte `b`; result 0. */
export const OP_FILL = 7;
/**
 * Job kind: the kernel's `step_run` (a run of consecutive pages stepped and
 * their records written): `a` = prevs, `b` = cur, `c` = n, `d` = page size,
 * `e` = update, then words 8-12: rec, res, scratch, offset low and high 32
 * bits; result the bytes of records written. See {@link JobTable.stepRun}.
 */
export const OP_STEP_RUN = 8;

/**
 * Result of a job that did not run because a job added before it in the same
 * batch failed ({@link OP_DECODE} < 0): see {@link KernelPool.run}.
 */
export const JOB_SKIPPED = -0x7fffffff;
/** Result of a job whose kernel call trapped (an address outside the memory): {@link KernelPool.run} then throws. */
export const JOB_TRAPPED = -0x80000000;
/** Result word of a job not run yet (see {@link JobTable.settled}). */
export const JOB_PENDING = -0x7ffffffe;

/** Int32 words per job (64 bytes: jobs run by different threads never share a cache line). */
export const JOB_WORDS = 16;
/** Word offsets inside a job. */
export const JOB_OP = 0;
const JOB_NEXT = 1;
export const JOB_A = 2;
export const JOB_B = 3;
export const JOB_C = 4;
export const JOB_D = 5;
export const JOB_E = 6;
export const JOB_RESULT = 7;
/** Word offsets of the fields after the result ({@link OP_STEP_RUN}'s). */
const JOB_F = 8;
const JOB_G = 9;
const JOB_H = 10;
const JOB_I = 11;
const JOB_J = 12;

/** Most lanes a table may have (the lane counter's bits in the claim word). */
export const MAX_LANES = 1024;
const LANE_BITS = 10;
const EPOCH_MASK = (1 << 21) - 1;
const NO_FAILURE = 0x7fffffff;

// The control area (Int32 words; the hot ones on cache lines of their own).
const C_EPOCH = 0; // batch number: workers wait on it
const C_CLAIM = 16; // (epoch & EPOCH_MASK) << LANE_BITS | next lane to claim
const C_DONE = 32; // lanes finished in this batch: the caller waits on it
const C_TABLE = 48; // word address of the table's lane heads
const C_LANES = 49;
const C_JOBS = 50; // word address of job 0
const C_MEMPAGES = 51; // memory size in 64 KiB pages (workers refresh their views when it grew)
const C_FAIL = 52; // smallest failing job index in this batch, or NO_FAILURE
const C_TRAPPED = 53; // a kernel call trapped in this batch
const C_SLEEPERS = 54; // workers blocked in Atomics.wait
const C_STOP = 55; // the pool is disposed
const C_READY = 56; // workers started
const C_SPIN = 57; // µs a worker spins for the next batch before sleeping
const C_BROKEN = 58; // a worker died (an error event): batches then run on the caller alone
const C_LANE_COUNTS = 64; // lanes run per thread (0: the caller), for tests and the bench
const CONTROL_WORDS = C_LANE_COUNTS + 256;
/** Batches run on the caller alone after the workers first cost more than they gave; doubled each time again, up to the max. */
const BACKOFF_MIN = 8;
const BACKOFF_MAX = 512;
/** Batches of fewer jobs run on the caller alone. */
const MIN_POOLED_JOBS = 32;

/** The kernel's exports the pool calls. */
type PoolKernel = KernelExports;

/** The parts of the WebAssembly JS API used here (no DOM types needed). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/** The parts of Node's worker_threads used here (typed locally: the codec names no Node module). */
interface WorkerHandle {
  unref(): void;
  terminate(): Promise<number>;
  on(event: 'error', listener: (err: Error) => void): unknown;
}
/** What `getKernelPool` needs of Node's worker_threads (inject it with {@link setWorkerThreads} where `process.getBuiltinModule` is missing). */
export interface WorkerThreadsApi {
  Worker: new (source: string, options: { eval: true; workerData: unknown; name?: string; stdout?: boolean; stderr?: boolean }) => WorkerHandle;
}

/**
 * A batch of kernel jobs, kept in the engine's shared memory so the workers
 * read it in place. Fill it with the `add…` methods (or {@link JobTable.add}),
 * run it with {@link KernelPool.run} (or {@link runJobsInline}), read
 * {@link JobTable.result}, then {@link JobTable.reset} for the next batch.
 * Each job has a `key` (a cache slot, a page index): the job goes to lane
 * `key % lanes`, and the jobs of one lane run in the order added, on one
 * thread. Jobs in different lanes run in any order, at the same time: they
 * must not write memory another lane reads or writes.
 */
export class JobTable {
  /** Most jobs per batch. */
  readonly capacity: number;
  /** Number of lanes (at most {@link MAX_LANES}). */
  readonly lanes: number;
  /**
   * Consecutive keys that share a lane: a full batch of consecutive keys (pages
   * in order) gives each lane one run of them, so each thread works through
   * adjacent pages and adjacent job words (interleaving lanes page by page ran a
   * worker at half the caller's speed).
   */
  readonly group: number;
  /** Jobs added since the last reset. */
  count = 0;
  /** The table's words (a view of the engine's memory; valid for good, also after the memory grows). */
  readonly words: Int32Array;
  /** Word index in `words` of job 0: job `j`'s fields are at `jobs + j * JOB_WORDS + JOB_…`. */
  readonly jobs: number;
  /** Word index in `words` of the lane heads. */
  readonly heads: number;
  readonly engine: WasmEngine;
  private readonly tails: Int32Array;
  private readonly ptr: number;
  private disposed = false;

  constructor(engine: WasmEngine, capacity: number, lanes = 64) {
    if (!engine.shared) throw new Error('JobTable needs an engine with shared memory');
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 1 << 24) throw new RangeError(`capacity must be 1 to 2^24, got ${capacity}`);
    if (!Number.isSafeInteger(lanes) || lanes < 1 || lanes > MAX_LANES) throw new RangeError(`lanes must be 1 to ${MAX_LANES}, got ${lanes}`);
    this.engine = engine;
    this.capacity = capacity;
    this.lanes = lanes;
    this.group = Math.max(1, Math.floor(capacity / lanes));
    const headWords = Math.ceil(lanes / JOB_WORDS) * JOB_WORDS;
    const bytes = (headWords + capacity * JOB_WORDS) * 4;
    const ptr = engine.take(this, bytes, 64);
    if (ptr < 0) throw new RangeError('kernel memory is short for the job table');
    this.ptr = ptr;
    this.words = new Int32Array(engine.bytes().buffer);
    this.heads = ptr >>> 2;
    this.jobs = this.heads + headWords;
    this.tails = new Int32Array(lanes);
    this.reset();
  }

  /** Empties the table (results of the last batch are gone). */
  reset(): void {
    this.count = 0;
    this.words.fill(-1, this.heads, this.heads + this.lanes);
    this.tails.fill(-1);
  }

  /** Adds a job (fields as the `OP_…` constants say); returns its index, whose result {@link JobTable.result} reads after the run. */
  add(key: number, op: number, a: number, b: number, c = 0, d = 0, e = 0): number {
    const j = this.count;
    if (j >= this.capacity) throw new RangeError(`job table full (${this.capacity} jobs)`);
    if (!Number.isSafeInteger(key) || key < 0) throw new RangeError(`job key ${key} is not a non-negative integer`);
    this.count = j + 1;
    const w = this.words;
    const at = this.jobs + j * JOB_WORDS;
    w[at] = op;
    w[at + 1] = -1;
    w[at + 2] = a;
    w[at + 3] = b;
    w[at + 4] = c;
    w[at + 5] = d;
    w[at + 6] = e;
    w[at + 7] = JOB_PENDING;
    const lane = this.laneOf(key);
    const tail = this.tails[lane]!;
    if (tail < 0) w[this.heads + lane] = j;
    else w[this.jobs + tail * JOB_WORDS + JOB_NEXT] = j;
    this.tails[lane] = j;
    return j;
  }

  /** Zero test of `len` bytes at `ptr`: result 1 when all zero. */
  isZero(key: number, ptr: number, len: number): number {
    return this.add(key, OP_IS_ZERO, ptr, len);
  }

  /** The encoder's fused step (`prev` 0: no cached copy); result as {@link WasmEngine.step}, delta at `out`. */
  step(key: number, prev: number, cur: number, out: number, n: number, update: boolean): number {
    return this.add(key, OP_STEP, prev, cur, out, n, update ? 1 : 0);
  }

  /**
   * The kernel's `step_run`: `n` consecutive pages from `cur` (page size
   * `ps`) stepped against the cached copies whose addresses are the Int32s at
   * `prevs` (0: none), their results written as Int32s at `res` and their
   * records, with CONTINUE and no block name, after one another from `rec`
   * (room for `n` × (`ps` + 11) bytes), each delta made at `scratch` first
   * (a page of the lane's own: see {@link JobTable.laneOf}); page offsets in
   * the records from `offset` on. Result: the bytes of records written.
   */
  stepRun(key: number, prevs: number, cur: number, n: number, ps: number, update: boolean, rec: number, res: number, scratch: number, offset: number): number {
    const j = this.add(key, OP_STEP_RUN, prevs, cur, n, ps, update ? 1 : 0);
    const at = this.jobs + j * JOB_WORDS;
    const w = this.words;
    w[at + JOB_F] = rec;
    w[at + JOB_G] = res;
    w[at + JOB_H] = scratch;
    w[at + JOB_I] = offset % 0x100000000;
    w[at + JOB_J] = Math.floor(offset / 0x100000000);
    return j;
  }

  /** The lane the jobs of `key` go to. */
  laneOf(key: number): number {
    return Math.floor(key / this.group) % this.lanes;
  }

  /** Copies `len` bytes from `src` to `dst`. */
  copy(key: number, dst: number, src: number, len: number): number {
    return this.add(key, OP_COPY, dst, src, len);
  }

  /** Validating decode of the delta at `src` into the page at `dst` (nothing written on failure). */
  decode(key: number, src: number, slen: number, dst: number, dlen: number): number {
    return this.add(key, OP_DECODE, src, slen, dst, dlen);
  }

  /** Applies a delta known to be valid. */
  apply(key: number, src: number, slen: number, dst: number): number {
    return this.add(key, OP_APPLY, src, slen, dst);
  }

  /** Encodes `cur` against `prev` into `out` (at most `dlen` bytes). */
  encode(key: number, prev: number, cur: number, slen: number, out: number, dlen: number): number {
    return this.add(key, OP_ENCODE, prev, cur, slen, out, dlen);
  }

  /** Fills `len` bytes at `dst` with `value`. */
  fill(key: number, dst: number, value: number, len: number): number {
    return this.add(key, OP_FILL, dst, value & 0xff, len);
  }

  /** The result of job `j` of the last run. */
  result(j: number): number {
    return this.words[this.jobs + j * JOB_WORDS + JOB_RESULT]!;
  }

  /**
   * Job `j`'s result once a thread has run it, or {@link JOB_PENDING}: for a
   * caller reading the results of a started batch as they come (threads
   * publish a result after the job's writes to memory, so what the job wrote
   * is there once its result is).
   */
  settled(j: number): number {
    return Atomics.load(this.words, this.jobs + j * JOB_WORDS + JOB_RESULT);
  }

  /** Gives the table's memory back (once); the table must not be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.engine.give(this, this.ptr);
  }
}

/** Options of {@link getKernelPool}. */
export interface KernelPoolOptions {
  /**
   * Microseconds a worker keeps polling for the next batch before it sleeps
   * (then the next batch pays a wake-up: 15-35 µs of the caller's time on a
   * VM). Default 0: on a machine shared with other processes a polling
   * worker takes CPU from the caller (measured: 2 threads with 100 µs of
   * polling ran at half the speed of 2 threads without). Worth setting on a
   * machine whose cores are the migration's alone. Settable later through
   * {@link KernelPool.spinMicros}.
   */
  spinMicros?: number;
}

/**
 * N threads running {@link JobTable} batches over one engine's memory: the
 * calling thread and N - 1 workers. Get one with {@link getKernelPool}.
 */
export class KernelPool {
  /** Threads a batch runs on (the caller included). */
  readonly threads: number;
  readonly engine: WasmEngine;
  private readonly ctl: Int32Array;
  private readonly kernel: PoolKernel;
  private readonly workers: WorkerHandle[];
  private epoch = 0;
  private disposed = false;
  /** Microseconds the caller polls for the workers' last lanes before it sleeps. */
  waitSpinMicros = 50;
  /** @internal For tests: the caller claims no lane (only workers run jobs). */
  callerShare = true;
  /** Batches the caller runs alone before it tries the workers again (see {@link KernelPool.run}). */
  private backoff = 0;
  private backoffLength = BACKOFF_MIN;
  /** The batch {@link KernelPool.start} began, until joined. */
  private pending: JobTable | null = null;
  /** A started batch that trapped, until its {@link KernelPool.finish} throws. */
  private trappedTable: JobTable | null = null;

  /** @internal Use {@link getKernelPool}. */
  constructor(engine: WasmEngine, threads: number, api: WorkerThreadsApi, module: object, kernel: PoolKernel, spinMicros: number) {
    this.engine = engine;
    this.threads = threads;
    this.kernel = kernel;
    const ctl = (this.ctl = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4)));
    this.ctl[C_FAIL] = NO_FAILURE;
    this.ctl[C_SPIN] = spinMicros;
    this.workers = [];
    try {
      for (let i = 1; i < threads; i++) {
        const w = new api.Worker(WORKER_SOURCE, { eval: true, name: `xbzrle-kernel-${i}`, workerData: { memory: engine.memory, module, control: this.ctl.buffer, index: i } });
        w.unref();
        // (Not a closure over the pool: the handles outlive it until the finalizer runs.)
        w.on('error', markBroken.bind(null, ctl));
        this.workers.push(w);
      }
    } catch (err) {
      this.dispose();
      throw err;
    }
    // A pool dropped without dispose() (its engine collected) stops its workers.
    finalizer.register(this, this.workers, this);
  }

  /**
   * A job table for this pool: `lanes` defaults to 8 per thread, so a thread
   * slow to start leaves little for the others to wait on.
   */
  createTable(capacity: number, lanes = Math.min(MAX_LANES, 8 * this.threads)): JobTable {
    return new JobTable(this.engine, capacity, lanes);
  }

  /** Microseconds a worker polls for the next batch before it sleeps (see {@link KernelPoolOptions.spinMicros}). */
  get spinMicros(): number {
    return Atomics.load(this.ctl, C_SPIN);
  }

  set spinMicros(us: number) {
    Atomics.store(this.ctl, C_SPIN, Math.max(0, Math.min(1e6, Math.floor(us))));
  }

  /** Workers that have started (they join batches from then on). */
  get ready(): number {
    return Atomics.load(this.ctl, C_READY);
  }

  /**
   * Runs the jobs of `table` and returns when all are done; results are then
   * in the table. Lanes are claimed by whichever thread is free (the caller
   * too); the jobs of one lane run in order on one thread. When an
   * {@link OP_DECODE} job fails, the jobs added after it in its lane do not
   * run (result {@link JOB_SKIPPED}), nor do jobs of other lanes added after
   * it that had not started yet; every job added before the first failure
   * runs. Throws when a kernel call trapped (an address outside the memory).
   * After {@link KernelPool.dispose} the caller runs every lane itself.
   */
  run(table: JobTable): void {
    if (table.engine !== this.engine) throw new Error('the job table belongs to another engine');
    if (table.count === 0) return;
    if (this.pending !== null) this.join(); // a started batch runs first
    const ctl = this.ctl;
    const e = this.publish(table);
    let solo = this.disposed || ctl[C_BROKEN] !== 0;
    if (!solo && this.callerShare) {
      if (table.count < MIN_POOLED_JOBS) solo = true; // less work than waking a worker costs
      else if (this.backoff > 0) {
        this.backoff--;
        solo = true;
      }
    }
    if (!solo) this.wake(e);
    const start = performance.now();
    if (this.callerShare || solo) this.claimLanes(e, table);
    const worked = performance.now() - start;
    if (!this.lanesDone(table.lanes)) {
      this.awaitLanes(table.lanes);
      // Waiting for the workers' lanes took longer than the caller's own share: the
      // workers are not getting cores (a busy machine). The next batches run on the
      // caller alone, more of them each time this repeats; a good batch resets it.
      if (this.callerShare && performance.now() - start - worked > worked) {
        this.backoff = this.backoffLength;
        this.backoffLength = Math.min(2 * this.backoffLength, BACKOFF_MAX);
        return this.checkTrapped();
      }
    }
    if (!solo) this.backoffLength = BACKOFF_MIN;
    this.checkTrapped();
  }

  /**
   * Starts the jobs of `table` on the workers and returns at once, so that
   * the caller can prepare the next batch meanwhile (in another table);
   * {@link KernelPool.finish} then joins the batch. The table must not
   * change until then. Another batch (`run` or `start`, by any caller)
   * first joins this one, so one batch runs at a time. Without workers
   * (disposed, broken), or for a batch of fewer than 32 jobs (less work than
   * waking a worker costs), the caller runs every lane now.
   */
  start(table: JobTable): void {
    if (table.engine !== this.engine) throw new Error('the job table belongs to another engine');
    if (this.pending !== null) this.join();
    const e = this.publish(table);
    this.pending = table;
    // Without workers, or less work than waking one costs: the caller runs the batch now.
    if (this.disposed || this.ctl[C_BROKEN] !== 0 || table.count < MIN_POOLED_JOBS) return this.join();
    this.wake(e);
  }

  /**
   * Joins the batch of `table` that {@link KernelPool.start} started (the
   * caller runs the lanes no worker has claimed yet, then waits for the
   * others); returns at once when it was joined already. Results, failures
   * and traps as {@link KernelPool.run}.
   */
  finish(table: JobTable): void {
    if (this.pending === table) this.join();
    if (this.trappedTable === table) {
      this.trappedTable = null;
      throw new Error('a kernel job trapped (an address outside the kernel memory)');
    }
  }

  /**
   * For a caller reading a started batch's results as they come
   * ({@link JobTable.settled}): runs the next lane of `table` no thread has
   * claimed yet on the calling thread. False when there is none left (or
   * `table` is not the started batch): its results come from the threads
   * running them.
   */
  help(table: JobTable): boolean {
    return this.pending === table && this.claimLane(this.epoch, table);
  }


  /** Runs what is left of the started batch on the caller and waits for the rest. */
  private join(): void {
    const table = this.pending!;
    this.pending = null;
    this.claimLanes(this.epoch, table);
    if (!this.lanesDone(table.lanes)) this.awaitLanes(table.lanes);
    if (this.ctl[C_TRAPPED] !== 0) this.trappedTable = table;
  }

  /** Makes `table` the next batch (the workers see it once woken); returns its epoch. */
  private publish(table: JobTable): number {
    const ctl = this.ctl;
    const e = (this.epoch = (this.epoch + 1) | 0);
    ctl[C_TABLE] = table.heads;
    ctl[C_LANES] = table.lanes;
    ctl[C_JOBS] = table.jobs;
    ctl[C_MEMPAGES] = Math.floor(this.engine.bytes().length / 65536); // (not >>> 16: 4 GiB of memory would be 0)
    ctl[C_FAIL] = NO_FAILURE;
    ctl[C_TRAPPED] = 0;
    ctl[C_DONE] = 0;
    Atomics.store(ctl, C_CLAIM, (e & EPOCH_MASK) << LANE_BITS);
    return e;
  }

  /** Wakes the workers for batch `e`. */
  private wake(e: number): void {
    const ctl = this.ctl;
    Atomics.store(ctl, C_EPOCH, e);
    if (Atomics.load(ctl, C_SLEEPERS) > 0) Atomics.notify(ctl, C_EPOCH);
  }

  private lanesDone(lanes: number): boolean {
    return Atomics.load(this.ctl, C_DONE) === lanes;
  }

  /**
   * Waits for the lanes workers are running: polls (a lane is a few jobs; a sleep
   * and a wake-up cost tens of µs on a VM), then sleeps until the last one notifies.
   */
  private awaitLanes(lanes: number): void {
    const ctl = this.ctl;
    let done = Atomics.load(ctl, C_DONE);
    const until = performance.now() + this.waitSpinMicros / 1000;
    while (done !== lanes) {
      for (let i = 0; i < 256 && done !== lanes; i++) done = Atomics.load(ctl, C_DONE);
      if (done === lanes || performance.now() > until) break;
    }
    while (done !== lanes) {
      Atomics.wait(ctl, C_DONE, done, 1000);
      done = Atomics.load(ctl, C_DONE);
    }
  }

  private checkTrapped(): void {
    const ctl = this.ctl;
    if (ctl[C_TRAPPED] !== 0) throw new Error('a kernel job trapped (an address outside the kernel memory)');
  }

  /** The caller's share: claims lanes of batch `e` until none is left. */
  private claimLanes(e: number, table: JobTable): void {
    while (this.claimLane(e, table));
  }

  /** Claims the next lane of batch `e` and runs it on the caller; false when every lane is claimed. */
  private claimLane(e: number, table: JobTable): boolean {
    const ctl = this.ctl;
    const lanes = table.lanes;
    const tag = (e & EPOCH_MASK) << LANE_BITS;
    for (;;) {
      const w = Atomics.load(ctl, C_CLAIM);
      const lane = w - tag;
      if (lane < 0 || lane >= lanes) return false;
      if (Atomics.compareExchange(ctl, C_CLAIM, w, w + 1) !== w) continue;
      runLane(this.kernel, table.words, this.engine.bytes(), ctl, table.words[table.heads + lane]!, table.jobs);
      ctl[C_LANE_COUNTS]!++;
      Atomics.add(ctl, C_DONE, 1);
      return true;
    }
  }


  /** @internal Lanes run per thread since the pool started (index 0: the caller), for tests and the bench. */
  laneCounts(): number[] {
    return Array.from(this.ctl.subarray(C_LANE_COUNTS, C_LANE_COUNTS + this.threads));
  }

  /** Stops the workers (once). Later batches run on the caller alone. */
  dispose(): void {
    if (this.disposed) return;
    if (this.pending !== null) this.join(); // its workers finish it first
    this.disposed = true;
    Atomics.store(this.ctl, C_STOP, 1);
    Atomics.add(this.ctl, C_EPOCH, 1);
    Atomics.notify(this.ctl, C_EPOCH);
    for (const w of this.workers) void w.terminate().catch(() => {});
    this.workers.length = 0;
    finalizer.unregister(this);
    forget(this);
  }

  /** True after {@link KernelPool.dispose}. */
  get isDisposed(): boolean {
    return this.disposed;
  }
}

/**
 * Runs the jobs of one lane on the calling thread (the caller's share; the
 * worker source below has the same loop). `j` is the lane's first job.
 */
function runLane(k: PoolKernel, w: Int32Array, mem: Uint8Array, ctl: Int32Array, j: number, jobs: number): void {
  while (j >= 0) {
    const at = jobs + j * JOB_WORDS;
    if (j > ctl[C_FAIL]!) {
      // A job added before this one failed: this lane stops here.
      for (; j >= 0; j = w[jobs + j * JOB_WORDS + JOB_NEXT]!) w[jobs + j * JOB_WORDS + JOB_RESULT] = JOB_SKIPPED;
      return;
    }
    let r: number;
    try {
      r = runJob(k, w, mem, at);
      if (r < 0 && w[at] === OP_DECODE) fail(ctl, j);
    } catch {
      r = JOB_TRAPPED;
      ctl[C_TRAPPED] = 1;
    }
    w[at + JOB_RESULT] = r;
    j = w[at + JOB_NEXT]!;
  }
}

/** Runs the job at word `at` of `w`; returns its result. Throws on a trap or an unknown kind. */
function runJob(k: PoolKernel, w: Int32Array, mem: Uint8Array, at: number): number {
  switch (w[at]) {
    case OP_STEP:
      return k.step(w[at + 2]!, w[at + 3]!, w[at + 4]!, w[at + 5]!, w[at + 6]!);
    case OP_IS_ZERO:
      return k.is_zero(w[at + 2]!, w[at + 3]!);
    case OP_COPY:
      k.copy(w[at + 2]!, w[at + 3]!, w[at + 4]!);
      return 0;
    case OP_DECODE:
      return k.decode(w[at + 2]!, w[at + 3]!, w[at + 4]!, w[at + 5]!);
    case OP_APPLY:
      k.apply(w[at + 2]!, w[at + 3]!, w[at + 4]!);
      return 0;
    case OP_ENCODE:
      return k.encode(w[at + 2]!, w[at + 3]!, w[at + 4]!, w[at + 5]!, w[at + 6]!);
    case OP_FILL:
      fillBytes(mem, w[at + 2]!, w[at + 3]!, w[at + 4]!);
      return 0;
    case OP_STEP_RUN:
      return k.step_run(w[at + 2]!, w[at + 3]!, w[at + 4]!, w[at + 5]!, w[at + 6]!, w[at + 8]!, w[at + 9]!, w[at + 10]!, w[at + 11]!, w[at + 12]!, -1);
    default:
      throw new RangeError(`unknown job kind ${String(w[at])}`);
  }
}

function markBroken(ctl: Int32Array): void {
  Atomics.store(ctl, C_BROKEN, 1);
}

/** Records job `j` as failed when it is the first so far. */
function fail(ctl: Int32Array, j: number): void {
  for (let cur = Atomics.load(ctl, C_FAIL); j < cur; cur = Atomics.load(ctl, C_FAIL)) {
    if (Atomics.compareExchange(ctl, C_FAIL, cur, j) === cur) return;
  }
}

/** Fills `len` bytes at `dst` of the memory `mem` (a view of all of it) with `value`. */
function fillBytes(mem: Uint8Array, dst: number, value: number, len: number): void {
  const at = dst >>> 0;
  const end = at + (len >>> 0);
  if (end > mem.length) throw new RangeError('fill outside the memory');
  fillInto(mem, value, at, end);
}

/**
 * Runs the jobs of `table` on the calling thread in the order they were
 * added (the reference the pool's results equal; the single-thread path of a
 * batch). Failures as {@link KernelPool.run}: after a failed
 * {@link OP_DECODE} the remaining jobs are skipped.
 */
export function runJobsInline(table: JobTable): void {
  const k = inlineKernel(table.engine);
  const w = table.words;
  const jobs = table.jobs;
  for (let j = 0; j < table.count; j++) {
    const at = jobs + j * JOB_WORDS;
    const r = runJob(k, w, table.engine.bytes(), at);
    w[at + JOB_RESULT] = r;
    if (w[at] === OP_DECODE && r < 0) {
      for (let s = j + 1; s < table.count; s++) w[jobs + s * JOB_WORDS + JOB_RESULT] = JOB_SKIPPED;
      return;
    }
  }
}

// The worker: CommonJS evaluated by `new Worker(source, { eval: true })`, so
// both bundles (ESM and CJS) need no extra entry file. Its lane loop is
// runLane's; the numbers are the constants above (checked by the tests).
const WORKER_SOURCE = `'use strict';
const { workerData } = require('worker_threads');
const { memory, module, control, index } = workerData;
const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
const ctl = new Int32Array(control);
let w = new Int32Array(memory.buffer);
const C_EPOCH = ${C_EPOCH}, C_CLAIM = ${C_CLAIM}, C_DONE = ${C_DONE}, C_TABLE = ${C_TABLE}, C_LANES = ${C_LANES}, C_JOBS = ${C_JOBS};
const C_MEMPAGES = ${C_MEMPAGES}, C_FAIL = ${C_FAIL}, C_TRAPPED = ${C_TRAPPED}, C_SLEEPERS = ${C_SLEEPERS}, C_STOP = ${C_STOP}, C_READY = ${C_READY}, C_SPIN = ${C_SPIN};
const LANE_COUNT = ${C_LANE_COUNTS} + index;
const JW = ${JOB_WORDS}, SKIPPED = ${JOB_SKIPPED}, TRAPPED = ${JOB_TRAPPED};
function fail(j) {
  for (let cur = Atomics.load(ctl, C_FAIL); j < cur; cur = Atomics.load(ctl, C_FAIL)) {
    if (Atomics.compareExchange(ctl, C_FAIL, cur, j) === cur) return;
  }
}
function runLane(j, jobs) {
  while (j >= 0) {
    const at = jobs + j * JW;
    if (j > ctl[C_FAIL]) {
      for (; j >= 0; j = w[jobs + j * JW + 1]) Atomics.store(w, jobs + j * JW + 7, SKIPPED);
      return;
    }
    let r = 0;
    try {
      switch (w[at]) {
        case ${OP_STEP}: r = k.step(w[at + 2], w[at + 3], w[at + 4], w[at + 5], w[at + 6]); break;
        case ${OP_IS_ZERO}: r = k.is_zero(w[at + 2], w[at + 3]); break;
        case ${OP_COPY}: k.copy(w[at + 2], w[at + 3], w[at + 4]); break;
        case ${OP_DECODE}: r = k.decode(w[at + 2], w[at + 3], w[at + 4], w[at + 5]); if (r < 0) fail(j); break;
        case ${OP_APPLY}: k.apply(w[at + 2], w[at + 3], w[at + 4]); break;
        case ${OP_ENCODE}: r = k.encode(w[at + 2], w[at + 3], w[at + 4], w[at + 5], w[at + 6]); break;
        case ${OP_STEP_RUN}: r = k.step_run(w[at + 2], w[at + 3], w[at + 4], w[at + 5], w[at + 6], w[at + 8], w[at + 9], w[at + 10], w[at + 11], w[at + 12], -1); break;
        case ${OP_FILL}: {
          const dst = w[at + 2] >>> 0, len = w[at + 4] >>> 0;
          if (dst + len > w.buffer.byteLength) throw new RangeError('fill outside the memory');
          // (Shared memory: bytes by Uint8Array.fill are ~40 x slower than words; see fillInto.)
          const v = w[at + 3] & 0xff, head = Math.min(len, (8 - (dst & 7)) & 7), words = (len - head) >>> 3;
          new Uint8Array(w.buffer, dst, head).fill(v);
          if (v === 0) new Float64Array(w.buffer, dst + head, words).fill(0);
          else new Uint32Array(w.buffer, dst + head, words * 2).fill(v * 0x01010101);
          new Uint8Array(w.buffer, dst + head + words * 8, len - head - words * 8).fill(v);
          break;
        }
        default: r = TRAPPED; ctl[C_TRAPPED] = 1;
      }
    } catch {
      r = TRAPPED;
      ctl[C_TRAPPED] = 1;
    }
    Atomics.store(w, at + 7, r); // after the job's writes: a caller reading results as they come sees them
    j = w[at + 1];
  }
}
function work(e) {
  const tag = (e & ${EPOCH_MASK}) << ${LANE_BITS};
  for (;;) {
    const c = Atomics.load(ctl, C_CLAIM);
    const lane = c - tag;
    const lanes = ctl[C_LANES];
    if (lane < 0 || lane >= lanes) return;
    if (Atomics.compareExchange(ctl, C_CLAIM, c, c + 1) !== c) continue;
    // The memory grew since this view was made: a new view covers the table and the pages.
    if (ctl[C_MEMPAGES] * 65536 > w.buffer.byteLength) w = new Int32Array(memory.buffer);
    runLane(w[ctl[C_TABLE] + lane], ctl[C_JOBS]);
    ctl[LANE_COUNT]++;
    if (Atomics.add(ctl, C_DONE, 1) + 1 === lanes) { Atomics.notify(ctl, C_DONE); return; }
  }
}
let seen = Atomics.load(ctl, C_EPOCH);
Atomics.add(ctl, C_READY, 1);
for (;;) {
  let e = Atomics.load(ctl, C_EPOCH);
  if (e === seen) {
    const spin = ctl[C_SPIN];
    if (spin > 0) {
      const until = performance.now() + spin / 1000;
      while ((e = Atomics.load(ctl, C_EPOCH)) === seen && performance.now() < until);
    }
    if (e === seen) {
      Atomics.add(ctl, C_SLEEPERS, 1);
      Atomics.wait(ctl, C_EPOCH, seen);
      Atomics.sub(ctl, C_SLEEPERS, 1);
      continue;
    }
  }
  if (Atomics.load(ctl, C_STOP) !== 0) break;
  seen = e;
  work(e);
}
`;

let compiled: object | null | undefined;
let workerThreads: WorkerThreadsApi | null | undefined;
const inlineKernels = new WeakMap<WasmEngine, PoolKernel>();
const POOLS_KEY = Symbol.for('xbzrle.kernel-pools.v1');
/** The most threads a pool has (a larger count asks for this pool). */
const MAX_POOL_THREADS = 256;
const finalizer = new FinalizationRegistry<WorkerHandle[]>((workers) => {
  for (const w of workers) void w.terminate().catch(() => {});
});

/** The compiled kernel module (the engine's shared-memory build), or null without WebAssembly. */
function kernelModule(): object | null {
  if (compiled !== undefined) return compiled;
  const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    const bin = atob(KERNEL_SHARED);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    compiled = WA === undefined ? null : new WA.Module(bytes);
  } catch {
    compiled = null;
  }
  return compiled;
}

/** A kernel instance of the calling thread over the engine's memory (the pool's and runJobsInline's). */
function inlineKernel(engine: WasmEngine): PoolKernel {
  let k = inlineKernels.get(engine);
  if (k === undefined) {
    const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    const module = kernelModule();
    if (WA === undefined || module === null) throw new Error('WebAssembly is not available');
    k = new WA.Instance(module, { env: { memory: engine.memory } }).exports as PoolKernel;
    inlineKernels.set(engine, k);
  }
  return k;
}

/**
 * Node's worker_threads when this runtime has it (Node's
 * `process.getBuiltinModule`, so no bundle names a Node module), else null.
 */
function findWorkerThreads(): WorkerThreadsApi | null {
  if (workerThreads !== undefined) return workerThreads;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  let api: WorkerThreadsApi | null = null;
  try {
    const mod = proc?.getBuiltinModule?.('worker_threads') as Partial<WorkerThreadsApi> | undefined;
    if (mod !== undefined && typeof mod.Worker === 'function') api = mod as WorkerThreadsApi;
  } catch {
    api = null;
  }
  return (workerThreads = api);
}

/**
 * Sets the worker API the pools use: `null` makes pools unavailable (as in a
 * browser), `undefined` finds Node's again. For runtimes without
 * `process.getBuiltinModule`, and for tests. Existing pools keep their workers.
 */
export function setWorkerThreads(api: WorkerThreadsApi | null | undefined): void {
  workerThreads = api;
}

type PoolRegistry = WeakMap<WasmEngine, Map<number, KernelPool>>;

function registry(): PoolRegistry {
  const g = globalThis as { [POOLS_KEY]?: PoolRegistry };
  return (g[POOLS_KEY] ??= new WeakMap());
}

function forget(pool: KernelPool): void {
  const pools = registry().get(pool.engine);
  if (pools?.get(pool.threads) === pool) pools.delete(pool.threads);
}

/**
 * The pool of `threads` threads (the caller and `threads - 1` workers) over
 * `engine`'s memory, made on first use and shared by every caller asking for
 * the same engine and thread count. Null when `threads` ≤ 1, when the engine
 * has no shared memory, or where there are no worker threads (browsers, the
 * `xbzrle/web` bundle outside Node): callers then use the single-thread path.
 * Workers are `unref()`ed: an idle pool never keeps the process alive.
 */
export function getKernelPool(engine: WasmEngine | null, threads: number, options: KernelPoolOptions = {}): KernelPool | null {
  if (engine === null || !engine.shared || !Number.isSafeInteger(threads) || threads <= 1) return null;
  threads = Math.min(threads, MAX_POOL_THREADS);
  const pools = registry();
  let forEngine = pools.get(engine);
  const existing = forEngine?.get(threads);
  if (existing !== undefined) return existing;
  const api = findWorkerThreads();
  const module = kernelModule();
  if (api === null || module === null || typeof SharedArrayBuffer === 'undefined') return null;
  const spin = options.spinMicros ?? 0;
  let pool: KernelPool;
  try {
    pool = new KernelPool(engine, threads, api, module, inlineKernel(engine), Math.max(0, Math.floor(spin)));
  } catch {
    return null;
  }
  if (forEngine === undefined) pools.set(engine, (forEngine = new Map()));
  forEngine.set(threads, pool);
  return pool;
}

/** True when the pool of `threads` threads over `engine`'s memory is made already (its workers started or starting): using it costs no start. */
export function hasKernelPool(engine: WasmEngine, threads: number): boolean {
  return registry().get(engine)?.has(Math.min(threads, MAX_POOL_THREADS)) === true;
}

/** Disposes every pool of `engine` (its workers stop; the next getKernelPool makes new ones). */
export function disposeKernelPools(engine: WasmEngine): void {
  const pools = registry().get(engine);
  if (pools === undefined) return;
  for (const pool of [...pools.values()]) pool.dispose();
}
