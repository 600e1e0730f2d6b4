/**
 * Worker threads for the delta's frames: zstd compression (diff) and
 * decompression (patch) of independent frames, off the calling thread. Each
 * worker loads the same zstd build as the calling thread
 * (`@bokuweb/zstd-wasm`), so a frame's bytes and a corrupt frame's message
 * are those of {@link loadZstd}'s. Workers start on demand (after the first
 * {@link FRAMES_BEFORE_WORKERS} frames, which the calling thread does), each
 * holds one frame at a time (the calling thread does the frames that come
 * while every worker is busy), are `unref()`ed while idle (an idle pool never keeps the process
 * alive), and are stopped by {@link FramePool.dispose}. A worker that dies
 * (or cannot load zstd) has its frames redone on the calling thread, as are
 * all frames where workers cannot be started.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { FrameCompressor, FrameWorkers } from './codec.js';

const OP_COMPRESS = 1;
const OP_DECOMPRESS = 2;

// CommonJS run by `new Worker(source, { eval: true })` (no extra entry file in the bundles); the
// zstd module is required by the absolute path the calling thread resolved.
const WORKER_SOURCE = `'use strict';
const { parentPort, workerData } = require('worker_threads');
const zstd = require(workerData.zstd);
const ready = zstd.init();
// Ready once zstd is: no frame waits for a worker's start (the caller does them meanwhile).
ready.then(() => parentPort.postMessage({ ready: true }), (err) => parentPort.postMessage({ fatal: String(err) }));
parentPort.on('message', (m) => {
  ready.then(() => {
    let out;
    try {
      out = m.op === ${OP_COMPRESS} ? zstd.compress(m.data, m.arg) : zstd.decompress(m.data, { defaultHeapSize: m.arg });
    } catch (err) {
      parentPort.postMessage({ id: m.id, error: String(err === null || err === undefined ? err : err.message) });
      return;
    }
    // The frame's buffer goes back too, for the next frame.
    parentPort.postMessage({ id: m.id, data: out, back: m.data.buffer }, [out.buffer, m.data.buffer]);
  }, (err) => parentPort.postMessage({ id: m.id, fatal: String(err) }));
});
`;

interface Task {
  op: number;
  data: Uint8Array;
  arg: number;
  resolve: (out: Uint8Array) => void;
  reject: (err: Error) => void;
}

interface Reply {
  id?: number;
  /** The worker loaded zstd: it takes frames from now on. */
  ready?: boolean;
  data?: Uint8Array;
  /** The buffer the frame was sent in, given back to be reused. */
  back?: ArrayBuffer;
  error?: string;
  fatal?: string;
}

class Slot {
  readonly pending = new Map<number, Task>();
  dead = false;
  /** Started and zstd loaded (frames go to it only then). */
  ready = false;
  constructor(readonly worker: Worker) {}
}

/** How workers are made (tests replace it to see the fallback). */
type WorkerFactory = (source: string, zstdPath: string, name: string) => Worker;
const defaultFactory: WorkerFactory = (source, zstdPath, name) => new Worker(source, { eval: true, workerData: { zstd: zstdPath }, name });
let factory: WorkerFactory | null = defaultFactory;

/** @internal For tests: `null` makes workers unavailable (every frame on the calling thread), `undefined` restores them. */
export function setFrameWorkerFactory(f: WorkerFactory | null | undefined): void {
  factory = f === undefined ? defaultFactory : f;
}

/**
 * Frames the calling thread does itself before the first worker starts: a
 * worker's start (~50 ms of a second core here) pays only when there is more
 * to do than that (a delta of a few MiB of records is done sooner alone).
 */
export const FRAMES_BEFORE_WORKERS = 8;
let eager = false;

/**
 * @internal For tests whose few frames must reach the workers: with `true`,
 * a worker starts with the first frame and takes frames while it starts
 * (they wait for it), as many as it is given; `false` restores the default.
 */
export function setFrameWorkersEager(on: boolean): void {
  eager = on;
}

let zstdPath: string | null | undefined;

/** The zstd module's file, for the workers to require; null when it cannot be found. */
function zstdModulePath(): string | null {
  if (zstdPath !== undefined) return zstdPath;
  try {
    // The CommonJS bundle has __filename; the ES module one (and the sources) import.meta.url.
    const base = typeof __filename === 'string' ? __filename : import.meta.url;
    zstdPath = createRequire(base).resolve('@bokuweb/zstd-wasm');
  } catch {
    zstdPath = null;
  }
  return zstdPath;
}

/**
 * Most threads the frames use: each worker holds its own zstd instance and a
 * frame or two (~15 MiB), and more than four gain little at the frame sizes
 * of a delta, so `diff`/`patch` stay under 256 MiB at any `--threads`.
 */
export const MAX_FRAME_THREADS = 4;

/** Frame buffers kept for reuse. */
const MAX_SPARE = 8;

/** Frames a worker holds at once; more are done on the calling thread. */
const MAX_IN_HAND = 1;

/**
 * Up to `threads - 1` workers compressing and decompressing frames; see the
 * file's comment.
 */
export class FramePool implements FrameWorkers {
  readonly threads: number;
  private readonly slots: Slot[] = [];
  private readonly maxWorkers: number;
  private readonly inline: FrameCompressor;
  private seq = 0;
  /**
   * Buffers frames were sent in, given back by the workers: reused for the
   * next frames instead of fresh memory (a page fault per 4 KiB on first
   * touch: ~3 ms of the calling thread per 1 MiB frame on this project's VM).
   */
  private readonly spare: ArrayBuffer[] = [];
  /** Frames still to do on the calling thread before the first worker starts. */
  private beforeWorkers = eager ? 0 : FRAMES_BEFORE_WORKERS;
  private disposed = false;
  private broken = false;

  private constructor(threads: number, inline: FrameCompressor) {
    this.threads = threads;
    this.maxWorkers = threads - 1;
    this.inline = inline;
  }

  /**
   * A pool for `threads` threads (the caller and `threads - 1` workers, at
   * most {@link MAX_FRAME_THREADS}), or null for 1 thread. `inline`: the
   * calling thread's compressor (the fallback).
   */
  static create(threads: number, inline: FrameCompressor): FramePool | null {
    if (threads <= 1) return null;
    return new FramePool(Math.min(threads, MAX_FRAME_THREADS), inline);
  }

  /** Workers started so far. */
  get started(): number {
    return this.slots.length;
  }

  /** @internal Workers that loaded zstd and take frames (for tests). */
  get readyWorkers(): number {
    return this.slots.filter((s) => s.ready && !s.dead).length;
  }

  compress(raw: Uint8Array, level: number): Promise<Uint8Array> {
    return this.submit(OP_COMPRESS, raw, level);
  }

  decompress(stored: Uint8Array, rawLength: number): Promise<Uint8Array> {
    return this.submit(OP_DECOMPRESS, stored, rawLength);
  }

  /** Stops the workers (once); frames asked for later run on the calling thread. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.slots) {
      s.dead = true;
      for (const t of s.pending.values()) t.reject(new Error('the frame pool was disposed'));
      s.pending.clear();
      void s.worker.terminate().catch(() => undefined);
    }
  }

  private runInline(op: number, data: Uint8Array, arg: number): Promise<Uint8Array> {
    try {
      return Promise.resolve(op === OP_COMPRESS ? this.inline.compress(data, arg) : this.inline.decompress(data, arg));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private submit(op: number, data: Uint8Array, arg: number): Promise<Uint8Array> {
    const slot = this.pick();
    if (slot === null) return this.runInline(op, data, arg);
    const id = ++this.seq;
    return new Promise<Uint8Array>((resolve, reject) => {
      slot.pending.set(id, { op, data, arg, resolve, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      // The worker gets its own copy of the frame's bytes, handed over without a second
      // copy. (Posting a view would clone its whole buffer: a frame of a delta held in
      // memory, or of a read chunk, would take the entire delta or chunk with it.)
      const own = new Uint8Array(this.bufferFor(data.length), 0, data.length);
      own.set(data);
      slot.worker.postMessage({ id, op, data: own, arg }, [own.buffer]);
    });
  }

  /**
   * The live worker with the fewest frames in hand, a new one when all are
   * busy and there is room; null: none, or every worker has a frame in hand
   * already (the calling thread then does this one itself, rather than wait
   * for them: on two cores, one worker alone compresses slower than the
   * calling thread and it together).
   */
  private pick(): Slot | null {
    if (this.disposed || this.broken) return null;
    if (this.beforeWorkers > 0) {
      this.beforeWorkers--;
      return null;
    }
    let best: Slot | null = null;
    let starting = false;
    for (const s of this.slots) {
      if (s.dead) continue;
      if (!s.ready && !eager) starting = true;
      else if (best === null || s.pending.size < best.pending.size) best = s;
    }
    // A new worker starts in the background; frames go to it once it says it is ready.
    if ((best === null || best.pending.size > 0) && !starting && this.slots.length < this.maxWorkers) {
      const started = this.spawn();
      if (eager) best = started ?? best;
    }
    if (eager) return best;
    return best !== null && best.pending.size < MAX_IN_HAND ? best : null;
  }

  private spawn(): Slot | null {
    const path = zstdModulePath();
    if (factory === null || path === null) {
      this.broken = true;
      return null;
    }
    let w: Worker;
    try {
      w = factory(WORKER_SOURCE, path, `xbzrle-frames-${this.slots.length + 1}`);
    } catch {
      this.broken = true;
      return null;
    }
    w.unref();
    const slot = new Slot(w);
    this.slots.push(slot);
    w.on('message', (m: Reply) => this.reply(slot, m));
    w.on('error', () => this.lose(slot));
    w.on('exit', () => this.lose(slot));
    return slot;
  }

  /** A buffer of at least `n` bytes to send a frame in: one given back, or a new one. */
  private bufferFor(n: number): ArrayBuffer {
    const spare = this.spare;
    for (let i = spare.length - 1; i >= 0; i--) {
      if (spare[i]!.byteLength >= n) return spare.splice(i, 1)[0]!;
    }
    return new ArrayBuffer(n);
  }

  private reply(slot: Slot, m: Reply): void {
    if (m.back instanceof ArrayBuffer && this.spare.length < MAX_SPARE) this.spare.push(m.back);
    if (m.fatal !== undefined) return this.lose(slot);
    if (m.ready === true) {
      slot.ready = true;
      return;
    }
    const t = slot.pending.get(m.id!);
    if (t === undefined) return;
    slot.pending.delete(m.id!);
    if (slot.pending.size === 0) slot.worker.unref();
    // A frame the worker could not do is done again here: the one-thread result (its
    // error, for a damaged frame), whatever failed in the worker.
    if (m.error !== undefined) this.runInline(t.op, t.data, t.arg).then(t.resolve, t.reject);
    else t.resolve(m.data!);
  }

  /** A worker died (or could not load zstd): its frames are redone here, and it gets no more. */
  private lose(slot: Slot): void {
    if (slot.dead) return;
    slot.dead = true;
    const tasks = [...slot.pending.values()];
    slot.pending.clear();
    void slot.worker.terminate().catch(() => undefined);
    for (const t of tasks) this.runInline(t.op, t.data, t.arg).then(t.resolve, t.reject);
  }
}
