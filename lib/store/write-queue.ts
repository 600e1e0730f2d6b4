/** Writes `data` at `offset` of `block`'s file (the whole of it). */
export type BlockWriter = (block: string, offset: number, data: Uint8Array) => Promise<void>;

/** A queued write: its file range, and when it is done. */
interface Job {
  block: string;
  from: number;
  to: number;
  done: Promise<void>;
}

/**
 * Writes through a few reused staging buffers: a caller copies pages into a
 * buffer and queues its writes, which run in a microtask (a synchronous
 * writer, as `FilePageStore`'s, makes them there) or on other threads (an
 * asynchronous one) while the caller goes on. Reused buffers stay warm
 * (fresh memory costs a page fault per 4 KiB); at most `count` of them are
 * queued or being written, so memory stays bounded and
 * {@link WriteQueue.take} makes a caller wait beyond that.
 *
 * With an asynchronous writer, writes to disjoint ranges run at once, side
 * by side (a busy calling thread does not hold the next one back); a write
 * overlapping one queued before it starts after that one, so a page written
 * twice ends with its later content.
 * A failed write stops the queue: writes not started are skipped and the
 * error is thrown by every later `take`/`drain`.
 */
export class WriteQueue {
  private readonly pool: Uint8Array[] = [];
  private created = 0;
  private readonly jobs = new Set<Job>();
  private failure: { error: unknown } | null = null;
  /** Callers waiting for a buffer, oldest first. */
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly write: BlockWriter,
    /** Bytes of each staging buffer. */
    readonly size: number,
    private readonly count = 4,
  ) {}

  /** True once a write failed (every later `take`/`drain` throws its error). */
  get failed(): boolean {
    return this.failure !== null;
  }

  /** True when nothing is queued or being written. */
  get idle(): boolean {
    return this.jobs.size === 0;
  }

  /** True when a write queued or under way covers some of `from` to `to` of `block`'s file. */
  writing(block: string, from: number, to: number): boolean {
    return this.overlapping(block, from, to).length > 0;
  }

  /** The writes queued or under way that cover some of `from` to `to` of `block`'s file. */
  private overlapping(block: string, from: number, to: number): Promise<void>[] {
    const found: Promise<void>[] = [];
    for (const job of this.jobs) if (job.block === block && job.from < to && from < job.to) found.push(job.done);
    return found;
  }

  /** A free staging buffer now, or null when all are queued (see {@link WriteQueue.take}). */
  tryTake(): Uint8Array | null {
    if (this.failure !== null) return null;
    const buffer = this.pool.pop();
    if (buffer !== undefined) return buffer;
    if (this.created < this.count) {
      this.created++;
      return new Uint8Array(this.size);
    }
    return null;
  }

  /** Returns a buffer from `take` to the pool (unused, or written), waking a caller waiting for one. */
  give(buffer: Uint8Array): void {
    this.pool.push(buffer);
    this.waiting.shift()?.();
  }

  /** A free staging buffer, waiting for a queued write to finish when none is. */
  async take(): Promise<Uint8Array> {
    for (;;) {
      if (this.failure !== null) throw this.failure.error;
      const buffer = this.tryTake();
      if (buffer !== null) return buffer;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  /**
   * Queues the write of `data` at `offset` of `block`: a view of `staged`
   * (a buffer from `take`, back in the pool once written), or an array the
   * caller no longer touches.
   */
  submit(block: string, offset: number, data: Uint8Array, staged: Uint8Array | null): void {
    this.submitAll(block, [offset], [data], staged);
  }

  /**
   * Queues writes of `pieces[i]` at `offsets[i]` of `block` (disjoint, in
   * increasing order), all views of `staged` (see {@link WriteQueue.submit}).
   */
  submitAll(block: string, offsets: readonly number[], pieces: readonly Uint8Array[], staged: Uint8Array | null): void {
    const from = offsets[0]!;
    const to = offsets[offsets.length - 1]! + pieces[pieces.length - 1]!.length;
    const before = this.overlapping(block, from, to);
    const run = async (): Promise<void> => {
      if (before.length > 0) await Promise.all(before);
      if (this.failure !== null) return;
      await Promise.all(pieces.map((piece, i) => this.write(block, offsets[i]!, piece)));
    };
    const job: Job = { block, from, to, done: Promise.resolve() };
    job.done = run()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.jobs.delete(job);
        if (staged !== null) this.give(staged);
        else this.waiting.shift()?.();
      });
    this.jobs.add(job);
  }

  /** Waits for every queued write; throws the first failure. */
  async drain(): Promise<void> {
    await this.quiet();
    if (this.failure !== null) throw this.failure.error;
  }

  /** Waits for every queued write, whatever its outcome (before the files close). */
  async quiet(): Promise<void> {
    while (this.jobs.size > 0) await Promise.all([...this.jobs].map((j) => j.done));
  }
}

/**
 * Pages copied one after another into a staging buffer (from
 * {@link WriteQueue.take}), in increasing file offsets: each run of adjacent
 * ones becomes one piece of {@link WriteQueue.submitAll}.
 */
export class Gather {
  private readonly offsets: number[] = [];
  private readonly pieces: Uint8Array[] = [];
  private from = 0;
  private at = 0;
  private next = -1;

  constructor(private readonly staged: Uint8Array) {}

  /** Copies `size` bytes of `src` at `srcAt`, the page at file offset `offset`, after the others. */
  add(offset: number, src: Uint8Array, srcAt: number, size: number): void {
    if (offset !== this.next) {
      this.endPiece();
      this.offsets.push(offset);
    }
    this.staged.set(src.subarray(srcAt, srcAt + size), this.at);
    this.at += size;
    this.next = offset + size;
  }

  /** Queues the pieces on `writes` as writes to `block`'s file, or gives the buffer back when none was added. */
  submit(writes: WriteQueue, block: string): void {
    this.endPiece();
    if (this.pieces.length === 0) writes.give(this.staged);
    else writes.submitAll(block, this.offsets, this.pieces, this.staged);
  }

  private endPiece(): void {
    if (this.at > this.from) this.pieces.push(this.staged.subarray(this.from, this.at));
    this.from = this.at;
  }
}
