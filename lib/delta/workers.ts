/**
 * Worker threads for the delta's frames: zstd compression (diff) and
 * decompression (patch) of independent frames, off the calling thread; and
 * chunks of diff's first pass (OLD's and NEW's pages read and scanned in the
 * kernel's shared memory, lib/delta/scan.ts). Each
 * worker loads the same zstd build as the calling thread
 * (`@bokuweb/zstd-wasm`), so a frame's bytes and a corrupt frame's message
 * are those of {@link loadZstd}'s. Workers start on demand (the first
 * frames), are `unref()`ed while idle (an idle pool never keeps the process
 * alive), and are stopped by {@link FramePool.dispose}. A worker that dies
 * (or cannot load zstd) has its frames redone on the calling thread, as are
 * all frames where workers cannot be started.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { allocPages, freePages } from '../codec/pages.js';
import type { FrameCompressor, FrameWorkers } from './codec.js';
import type { PageScanner } from './scan.js';

const OP_COMPRESS = 1;
const OP_DECOMPRESS = 2;
const OP_SCAN = 3;

// CommonJS run by `new Worker(source, { eval: true })` (no extra entry file in the bundles); the
// zstd module is required by the absolute path the calling thread resolved.
const WORKER_SOURCE = `'use strict';
const { parentPort, workerData } = require('worker_threads');
const { readSync } = require('fs');
const zstd = require(workerData.zstd);
const ready = zstd.init();
let scanner = null;
// \`n\` bytes of the file \`fd\` at \`pos\` into the memory at \`at\`: zeros past its \`size\`.
function readInto(view, fd, at, n, pos, size) {
  const have = Math.max(0, Math.min(n, size - pos));
  let done = 0;
  while (done < have) {
    const r = readSync(fd, view, at + done, have - done, pos + done);
    if (r === 0) throw new Error('file shrank while being read');
    done += r;
  }
  if (have < n) view.fill(0, at + have, at + n);
}
function scan(m) {
  if (m.memory !== undefined) scanner = { memory: m.memory, x: new WebAssembly.Instance(m.module, { env: { memory: m.memory } }).exports };
  const view = new Uint8Array(scanner.memory.buffer);
  const count = m.len / m.ps;
  let changed = 0;
  for (let at = 0; at < m.len; at += m.step) {
    const n = Math.min(m.step, m.len - at);
    readInto(view, m.newFd, m.newBuf, n, m.pos + at, m.newSize);
    readInto(view, m.oldFd, m.oldBuf, n, m.pos + at, m.oldSize);
    const first = at / m.ps;
    changed += scanner.x.scan(m.oldBuf, m.newBuf, n / m.ps, m.ps, m.out + 8 * first, m.out + 8 * (count + first), m.out + 16 * count + first, m.zeroHash);
  }
  return changed;
}
parentPort.on('message', (m) => {
  if (m.op === ${OP_SCAN}) {
    let changed;
    try {
      changed = scan(m);
    } catch (err) {
      parentPort.postMessage({ id: m.id, error: String(err === null || err === undefined ? err : err.message) });
      return;
    }
    parentPort.postMessage({ id: m.id, changed });
    return;
  }
  ready.then(() => {
    let out;
    try {
      out = m.op === ${OP_COMPRESS} ? zstd.compress(m.data, m.arg) : zstd.decompress(m.data, { defaultHeapSize: m.arg });
    } catch (err) {
      parentPort.postMessage({ id: m.id, error: String(err === null || err === undefined ? err : err.message) });
      return;
    }
    parentPort.postMessage({ id: m.id, data: out }, [out.buffer]);
  }, (err) => parentPort.postMessage({ id: m.id, fatal: String(err) }));
});
`;

interface Task {
  op: number;
  data: Uint8Array;
  arg: number;
  resolve: (out: Uint8Array) => void;
  reject: (err: Error) => void;
  /** A scan chunk's count of changed pages goes here (frames use `resolve`). */
  scanned?: (changed: number) => void;
}

interface Reply {
  id: number;
  data?: Uint8Array;
  changed?: number;
  error?: string;
  fatal?: string;
}

class Slot {
  readonly pending = new Map<number, Task>();
  dead = false;
  /** The memory this worker's scanner works on (sent with its first chunk). */
  scanMemory: object | null = null;
  /** Its read buffers for scan chunks in the kernel's memory (OLD's step, then NEW's). */
  scanBufs: Uint8Array | null = null;
  constructor(readonly worker: Worker) {}
}

/**
 * A chunk of diff's first pass for a worker: `len` bytes of OLD and NEW
 * from byte `pos` (files by descriptor, zeros past their sizes), read `step`
 * bytes at a time into the worker's buffers and scanned
 * ({@link PageScanner.scan}) into the output at address `out`
 * ({@link scanOutBytes} of `len / ps` pages).
 */
export interface ScanChunk {
  oldFd: number;
  newFd: number;
  oldSize: number;
  newSize: number;
  pos: number;
  len: number;
  step: number;
  ps: number;
  zeroHash: bigint;
  out: number;
}

/** How workers are made (tests replace it to see the fallback). */
type WorkerFactory = (source: string, zstdPath: string, name: string) => Worker;
const defaultFactory: WorkerFactory = (source, zstdPath, name) => new Worker(source, { eval: true, workerData: { zstd: zstdPath }, name });
let factory: WorkerFactory | null = defaultFactory;

/** @internal For tests: `null` makes workers unavailable (every frame on the calling thread), `undefined` restores them. */
export function setFrameWorkerFactory(f: WorkerFactory | null | undefined): void {
  factory = f === undefined ? defaultFactory : f;
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

/**
 * Up to `threads - 1` workers compressing and decompressing frames; see the
 * file's comment.
 */
export class FramePool implements FrameWorkers {
  readonly threads: number;
  private readonly slots: Slot[] = [];
  private readonly maxWorkers: number;
  private readonly inline: FrameCompressor | null;
  private seq = 0;
  private disposed = false;
  private broken = false;

  private constructor(threads: number, inline: FrameCompressor | null) {
    this.threads = threads;
    this.maxWorkers = threads - 1;
    this.inline = inline;
  }

  /**
   * A pool for `threads` threads (the caller and `threads - 1` workers, at
   * most {@link MAX_FRAME_THREADS}), or null for 1 thread. `inline`: the
   * calling thread's compressor (the fallback).
   */
  static create(threads: number, inline: FrameCompressor | null): FramePool | null {
    if (threads <= 1) return null;
    return new FramePool(Math.min(threads, MAX_FRAME_THREADS), inline);
  }

  /** Workers started so far. */
  get started(): number {
    return this.slots.length;
  }

  compress(raw: Uint8Array, level: number): Promise<Uint8Array> {
    return this.submit(OP_COMPRESS, raw, level);
  }

  decompress(stored: Uint8Array, rawLength: number): Promise<Uint8Array> {
    return this.submit(OP_DECOMPRESS, stored, rawLength);
  }

  /** Workers that may take scan chunks (started or not yet). */
  get scanWorkers(): number {
    return this.disposed || this.broken ? 0 : this.maxWorkers - this.slots.filter((s) => s.dead).length;
  }

  /**
   * Reads and scans a chunk on a worker (see {@link ScanChunk}); resolves to
   * the count of changed pages. Rejects when no worker could do it (none
   * started, it failed or died): the caller then does the chunk itself.
   */
  scan(chunk: ScanChunk, scanner: PageScanner): Promise<number> {
    const slot = this.pick();
    if (slot === null) return Promise.reject(new Error('no worker'));
    const bytes = 2 * chunk.step;
    if (slot.scanBufs === null || slot.scanBufs.length < bytes) {
      if (slot.scanBufs !== null) freePages(slot.scanBufs);
      slot.scanBufs = allocPages(bytes / chunk.ps, chunk.ps);
    }
    const base = scanner.engine.addressOf(slot.scanBufs);
    if (base < 0) return Promise.reject(new Error('no kernel memory'));
    const id = ++this.seq;
    const first = slot.scanMemory !== scanner.engine.memory;
    slot.scanMemory = scanner.engine.memory;
    return new Promise<number>((resolve, reject) => {
      slot.pending.set(id, { op: OP_SCAN, data: new Uint8Array(0), arg: 0, resolve: () => undefined, reject, scanned: resolve });
      if (slot.pending.size === 1) slot.worker.ref();
      slot.worker.postMessage({
        id,
        op: OP_SCAN,
        ...chunk,
        oldBuf: base,
        newBuf: base + chunk.step,
        ...(first ? { memory: scanner.engine.memory, module: scanner.module } : {}),
      });
    });
  }

  /** Stops the workers (once); frames asked for later run on the calling thread. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.slots) {
      if (s.scanBufs !== null) freePages(s.scanBufs);
      s.scanBufs = null;
      s.dead = true;
      for (const t of s.pending.values()) t.reject(new Error('the frame pool was disposed'));
      s.pending.clear();
      void s.worker.terminate().catch(() => undefined);
    }
  }

  /** A task the worker could not do: a frame is done here; a scan chunk is refused (its caller does it). */
  private redo(t: Task, why: string): void {
    if (t.op === OP_SCAN) t.reject(new Error(why));
    else this.runInline(t.op, t.data, t.arg).then(t.resolve, t.reject);
  }

  private runInline(op: number, data: Uint8Array, arg: number): Promise<Uint8Array> {
    try {
      const c = this.inline;
      if (c === null) throw new Error('no frame compressor');
      return Promise.resolve(op === OP_COMPRESS ? c.compress(data, arg) : c.decompress(data, arg));
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
      const own = new Uint8Array(data); // a copy even of a Buffer, whose slice() is a view
      slot.worker.postMessage({ id, op, data: own, arg }, [own.buffer]);
    });
  }

  /** The live worker with the fewest frames in hand, a new one when all are busy and there is room; null: none. */
  private pick(): Slot | null {
    if (this.disposed || this.broken) return null;
    let best: Slot | null = null;
    for (const s of this.slots) if (!s.dead && (best === null || s.pending.size < best.pending.size)) best = s;
    if ((best === null || best.pending.size > 0) && this.slots.length < this.maxWorkers) best = this.spawn() ?? best;
    return best;
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

  private reply(slot: Slot, m: Reply): void {
    if (m.fatal !== undefined) return this.lose(slot);
    const t = slot.pending.get(m.id);
    if (t === undefined) return;
    slot.pending.delete(m.id);
    if (slot.pending.size === 0) slot.worker.unref();
    // A frame the worker could not do is done again here: the one-thread result (its
    // error, for a damaged frame), whatever failed in the worker.
    if (m.error !== undefined) this.redo(t, m.error);
    else if (t.scanned !== undefined) {
      if (typeof m.changed === 'number') t.scanned(m.changed);
      else t.reject(new Error('no scan result'));
    } else t.resolve(m.data!);
  }

  /** A worker died (or could not load zstd): its frames are redone here, and it gets no more. */
  private lose(slot: Slot): void {
    if (slot.dead) return;
    slot.dead = true;
    const tasks = [...slot.pending.values()];
    slot.pending.clear();
    void slot.worker.terminate().catch(() => undefined);
    for (const t of tasks) this.redo(t, 'the worker died');
  }
}
