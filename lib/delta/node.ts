/**
 * Node drivers of the delta format: {@link diffImages}, {@link patchImage}
 * and {@link verifyDelta} over files, pipes and async sources. Outputs go
 * to a temporary file next to the target, fsynced and renamed into place
 * only once every check passed.
 */
import { Buffer } from 'node:buffer';
import { createReadStream, readSync, writeSync } from 'node:fs';
import { copyFile, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { PageKernel } from '../codec/kernel.js';
import { allocPages, freePages } from '../codec/pages.js';
import { argTypeError, XbzrleError } from '../errors.js';
import { RecordWriter } from '../format/record-writer.js';
import { FilePageStore } from '../store/file-page-store.js';
import { DecoderCore } from '../core/decoder.js';
import { DeltaApplier, wrongBaseSize } from './apply.js';
import { ChainApplier, tagDelta, type RandomRead } from './chain.js';
import { DeltaEncoder, emptyStats, setTotals, type DeltaStats } from './encoder.js';
import { isDeltaMagic, REF_OLD } from './format.js';
import { loadHasher } from './hash.js';
import { ByteQueue, DeltaReader, RecordCursor, RecordKind } from './reader.js';
import { checkDelta } from '../codec/decode.js';
import { RamRecordParser } from '../format/record-parser.js';
import { RamApplier } from '../store/ram-applier.js';
import { RamLoader } from '../store/ram-loader.js';
import { WriteBack } from '../store/write-back.js';
import { loadZstd } from './zstd.js';
import { FramePool } from './workers.js';
import type { FrameWorkers } from './codec.js';
import { checkThreads } from '../core/options.js';
import { fileDescriptors, fileSource, readAhead, readFully, type ImageSource } from './image-source.js';
import { fillInto } from '../codec/copy.js';

export type { ImageSource } from './image-source.js';

/** Where a delta goes: a file path (temp file + rename), a Node writable, or a function called per chunk. */
export type DeltaOutput = string | NodeJS.WritableStream | ((chunk: Uint8Array) => void | Promise<void>);

/** A delta to read: a file path, its bytes, or a source of chunks (a pipe, a Node readable). */
export type DeltaInput = string | Uint8Array | AsyncIterable<Uint8Array>;

/** Options of {@link diffImages}. */
export interface DiffImagesOptions {
  /** `xbzrle` (default): this library's checked container; `qemu`: a plain RAM record stream (no header, checksums, references or compression). */
  format?: 'xbzrle' | 'qemu';
  /** Page size. Default 4096. */
  pageSize?: number;
  /** Block name of the records. Default `ram`. */
  block?: string;
  /** zstd-compress the frames. Default true. */
  compress?: boolean;
  /** zstd level: 1 to 22, or -7 to -1 for zstd's fast levels. Default 3. */
  level?: number;
  /** Page deduplication (references to OLD's pages and to earlier NEW pages). Default true. */
  dedup?: boolean;
  /** Overwrite an existing output file. Default false. */
  force?: boolean;
  /** Called with NEW bytes done so far. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Threads to work on: the calling thread and `threads - 1` workers, which
   * compress the frames (from 1 to 256; default 1, no worker). The delta is
   * the same, byte for byte, whatever the count; where worker threads are
   * missing, one thread does everything.
   */
  threads?: number;
}

/** Options of {@link patchImage}. */
export interface PatchImageOptions {
  /** Refuse a delta of another page size (`ERR_DELTA_PAGE_SIZE`). Plain (`qemu`) deltas are read with this page size (default 4096). */
  pageSize?: number;
  /** Check OLD's content digest. Default true; with false only its size is checked. */
  verify?: boolean;
  /** Overwrite an existing output file. Default false. */
  force?: boolean;
  /** Called with NEW bytes done so far, per delta of the chain (`index` from 0). */
  onProgress?: (done: number, total: number, index: number) => void;
  /**
   * A fresh temporary path next to the output, for NEW and the intermediate
   * images of a chain (default `.NAME.PID.N.xbzrle-tmp`); lets a caller clean
   * them up on a signal.
   */
  tempPath?: (output: string) => string;
  /**
   * Threads to work on: the calling thread and `threads - 1` workers, which
   * decompress the frames of the deltas ahead of their use (from 1 to 256;
   * default 1, no worker). The output, the counters and the errors are the
   * same whatever the count; where worker threads are missing, one thread
   * does everything.
   */
  threads?: number;
}

/** Options of {@link verifyDelta}. */
export interface VerifyDeltaOptions {
  /** Refuse a delta of another page size. Plain deltas are read with it (default 4096). */
  pageSize?: number;
}

const STEP = 1 << 20;
/** Steps of diff's first pass read ahead of the scan, per file. */
const AHEAD = 4;
/**
 * Second pass of diff: changed pages at most this many pages apart are read together (a read
 * call costs ~5-8 µs, about as much as copying 16-30 pages from the page cache; 8, 16, 24, 32 and
 * 48 measured on the changed pages of the 1 GiB `edits` bench image: 16 was the fastest).
 */
const GAP = 16;

/** A sequential reader of a stream source into fixed steps (zero-padded). */
async function* streamSteps(stream: AsyncIterable<Uint8Array>, buf: Uint8Array, size: number, total: number, name: string): AsyncGenerator<Uint8Array> {
  const q = new ByteQueue(stream);
  for (let pos = 0; pos < total; pos += STEP) {
    const n = Math.min(STEP, total - pos);
    const have = Math.max(0, Math.min(n, size - pos));
    if (have > 0) {
      const got = await q.read(have);
      if (got.length < have) throw new Error(`${name}: ended at byte ${pos + got.length}, expected ${size}`);
      buf.set(got, 0);
    }
    if (have < n) fillInto(buf, 0, have, n);
    yield buf.subarray(0, n);
  }
}

interface Sink {
  write(chunk: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

let tempSeq = 0;
function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target).slice(0, 64)}.${process.pid}.${++tempSeq}.xbzrle-tmp`);
}

async function refuseExisting(path: string, force: boolean | undefined): Promise<void> {
  if (force === true) return;
  const st = await stat(path).catch(() => null);
  if (st !== null) throw Object.assign(new Error(`${path}: already exists (use force to overwrite)`), { code: 'EEXIST' });
}

async function openSink(output: DeltaOutput, force: boolean | undefined): Promise<Sink> {
  if (typeof output === 'string') {
    await refuseExisting(output, force);
    const temp = tempPathFor(output);
    const fh = await open(temp, 'wx');
    let pos = 0;
    return {
      write: async (c) => {
        let done = 0;
        while (done < c.length) done += (await fh.write(c, done, c.length - done, pos + done)).bytesWritten;
        pos += c.length;
      },
      commit: () => commitTemp({ fh, path: temp }, output),
      abort: () => dropTemp({ fh, path: temp }),
    };
  }
  if (typeof output === 'function') {
    return { write: async (c) => void (await output(c)), commit: async () => undefined, abort: async () => undefined };
  }
  if (output !== null && typeof output === 'object' && typeof output.write === 'function') {
    const w = output;
    return {
      write: (c) =>
        new Promise<void>((resolve, reject) => {
          const ok = w.write(c, (err?: Error | null) => (err ? reject(err) : undefined));
          if (ok) resolve();
          else {
            const onDrain = (): void => {
              w.removeListener('error', onError);
              resolve();
            };
            const onError = (err: Error): void => {
              w.removeListener('drain', onDrain);
              reject(err);
            };
            w.once('drain', onDrain);
            w.once('error', onError);
          }
        }),
      commit: async () => undefined,
      abort: async () => undefined,
    };
  }
  throw argTypeError('output', 'a path, a writable stream or a function', output);
}

async function asSource(input: string | ImageSource, name: string): Promise<{ src: ImageSource; close: () => Promise<void> }> {
  if (typeof input === 'string') return fileSource(input);
  if (input === null || typeof input !== 'object' || !Number.isSafeInteger(input.size) || (input.read === undefined && input.stream === undefined)) {
    throw argTypeError(name, 'a path or an ImageSource ({ size, read } or { size, stream })', input);
  }
  return { src: input, close: async () => undefined };
}

/**
 * Writes a delta that turns OLD into NEW (docs/delta-format.md). OLD is read
 * twice when it is a file (first to hash its pages: its digest goes in the
 * header and every page of it becomes a dedup candidate), once when it is a
 * pipe; NEW once. Both are read one step ahead of the comparison, which runs
 * in the WebAssembly kernel on the buffers the files were read into.
 *
 * @param oldInput - OLD: a path or an {@link ImageSource}
 * @param newInput - NEW: a path or an {@link ImageSource} (its size must be a positive multiple of the page size)
 * @param output - where the delta goes (a path is written through a temp file, fsynced and renamed)
 * @returns the counters (records by kind, sizes, digests)
 * @throws XbzrleError, or the file system's errors
 *
 * @example
 * ```ts
 * const stats = await diffImages('snap1.img', 'snap2.img', 'snap2.xbzd')
 * console.log(stats.deltaBytes, stats.refOld)
 * ```
 */
export async function diffImages(oldInput: string | ImageSource, newInput: string | ImageSource, output: DeltaOutput, options: DiffImagesOptions = {}): Promise<DeltaStats> {
  const threads = checkThreads(options.threads);
  const ps = options.pageSize ?? 4096;
  const format = options.format ?? 'xbzrle';
  if (format !== 'xbzrle' && format !== 'qemu') throw argTypeError('options.format', "'xbzrle' or 'qemu'", format);
  const oldName = typeof oldInput === 'string' ? oldInput : 'OLD';
  const newName = typeof newInput === 'string' ? newInput : 'NEW';
  const o = await asSource(oldInput, 'old');
  let n: Awaited<ReturnType<typeof asSource>> | null = null;
  let sink: Sink | null = null;
  const bufs: Uint8Array[] = [];
  const alloc = (bytes = STEP): Uint8Array => {
    const b = allocPages(bytes / ps, ps);
    bufs.push(b);
    return b;
  };
  let enc: DeltaEncoder | null = null;
  let workers: FramePool | null = null;
  try {
    n = await asSource(newInput, 'new');
    const newSize = n.src.size;
    const oldSize = o.src.size;
    if (newSize === 0 || newSize % ps !== 0) throw new XbzrleError('ERR_INVALID_RECORD', `${newName}: size ${newSize} is not a positive multiple of the page size ${ps}`);
    const compress = format === 'xbzrle' && options.compress !== false;
    const [hasher, compressor] = await Promise.all([loadHasher(), compress ? loadZstd() : Promise.resolve(null)]);
    sink = await openSink(output, options.force);
    const s = sink;
    const pending: Uint8Array[] = [];
    // Frames compressed on the workers go out in order; at most one per thread in flight (a slow
    // output holds the next window back, and so the reading).
    const flush = async (): Promise<void> => {
      await enc?.drain();
      for (const c of pending.splice(0)) await s.write(c);
    };
    if (compressor !== null) workers = FramePool.create(threads, compressor);
    const newSteps = n.src.read !== undefined ? readAhead(n.src, [alloc(), alloc()], newSize, newName) : streamSteps(n.src.stream!, alloc(), newSize, newSize, newName);
    const oldSteps = (): AsyncGenerator<Uint8Array> => (o.src.read !== undefined ? readAhead(o.src, [alloc(), alloc()], newSize, oldName) : streamSteps(o.src.stream!, alloc(), oldSize, newSize, oldName));
    const run: DiffRun = { ps, oldSize, newSize, oldName, newName, alloc, flush, onProgress: options.onProgress };
    if (format === 'qemu') {
      const stats = await diffPlain(run, newSteps, oldSteps(), options.block ?? 'ram', (c) => pending.push(c));
      await s.commit();
      return stats;
    }
    const oldFile = o.src.read !== undefined ? o.src : null;
    const newFile = n.src.read !== undefined ? n.src : null;
    const e = DeltaEncoder.create(
      { pageSize: ps, oldSize, newSize, block: options.block, compress, level: options.level, dedup: options.dedup },
      {
        readOld: oldFile === null ? undefined : (off, into) => readPage(oldFile, into, ps, off, oldSize, oldName),
        readNew: newFile === null ? undefined : (off, into) => readPage(newFile, into, ps, off, newSize, newName),
      },
      (c) => pending.push(c),
      { hasher, compressor, workers },
    );
    enc = e;
    if (oldFile !== null && newFile !== null) {
      // Two passes. 1: OLD and NEW side by side, compared and hashed; 2: the changed pages.
      const [ob, nb] = await scanPass(run, e, oldFile, newFile);
      await changedPass(run, e, oldFile, newFile, ob, nb);
    } else {
      if (oldFile !== null) {
        // First pass over OLD: page hashes (its digest, the dedup index).
        const oldPadded = Math.ceil(oldSize / ps) * ps;
        for await (const ob of readAhead(oldFile, [alloc(), alloc()], oldPadded, oldName)) e.indexOld(ob, e.oldHashedBytes);
      }
      const os = oldFile !== null ? oldSteps() : streamSteps(o.src.stream!, alloc(), oldSize, Math.max(newSize, Math.ceil(oldSize / ps) * ps), oldName);
      await inOrderPass(run, e, newSteps, os, oldFile === null);
    }
    const stats = await e.finish();
    await flush();
    await s.commit();
    return stats;
  } catch (err) {
    await sink?.abort();
    throw err;
  } finally {
    workers?.dispose();
    enc?.dispose();
    for (const b of bufs) freePages(b);
    await n?.close();
    await o.close();
  }
}

/**
 * What diff's passes share: the page size, the images' sizes and names, the
 * allocator of its read buffers (kernel memory, freed when diff ends), the
 * flush of the records made so far to the output, and the progress callback.
 * (The passes are functions of their own, not loops of diffImages: V8 then
 * optimizes each loop on its own, a fraction of the compile work of the whole.)
 */
interface DiffRun {
  ps: number;
  oldSize: number;
  newSize: number;
  oldName: string;
  newName: string;
  alloc: (bytes?: number) => Uint8Array;
  flush: () => Promise<void>;
  onProgress: ((done: number, total: number) => void) | undefined;
}

/** `--format qemu`: NEW against OLD page by page, as QEMU's plain RAM records (no header, dedup or compression). */
async function diffPlain(run: DiffRun, newSteps: AsyncGenerator<Uint8Array>, os: AsyncGenerator<Uint8Array>, block: string, out: (chunk: Uint8Array) => void): Promise<DeltaStats> {
  const { ps, oldSize, newSize } = run;
  const stats = emptyStats('qemu', ps, oldSize, newSize);
  const writer = new RecordWriter({ pageSize: ps, alloc: (k) => Buffer.allocUnsafe(k) }, out);
  writer.memSize([{ id: block, length: newSize }]);
  const kernel = new PageKernel(ps, 1);
  try {
    let pos = 0;
    for await (const nb of newSteps) {
      const ob = (await os.next()).value as Uint8Array;
      for (let at = 0; at < nb.length; at += ps) {
        const r = kernel.encode(ob, at, nb, at);
        if (r === 0) stats.unchanged++;
        else if (kernel.isZero(nb, at)) {
          writer.zero(block, pos + at, 0);
          stats.zero++;
        } else if (r > 0) {
          writer.xbzrle(block, pos + at, kernel.delta, kernel.deltaOff, r);
          stats.xbzrle++;
        } else {
          writer.page(block, pos + at, nb, at);
          stats.page++;
        }
      }
      pos += nb.length;
      await run.flush();
      run.onProgress?.(pos, newSize);
    }
    writer.eos();
    writer.flush();
    await run.flush();
    stats.deltaBytes = writer.bytesWritten;
    stats.rawBytes = writer.bytesWritten;
    return stats;
  } finally {
    kernel.dispose();
  }
}

/**
 * diff's first pass over two files: OLD and NEW side by side, compared and
 * hashed in the kernel's memory (DeltaEncoder.scan); OLD's pages hashed
 * (digest, dedup index), changed pages noted (1 bit a page). Each file is
 * read AHEAD steps ahead on libuv's threads: from the page cache a read is a
 * copy, done there while this thread scans. (Synchronous reads instead: diff
 * of the 1 GiB edits images 1.38x the time, median of 9 interleaved
 * in-process runs at load 9; 1, 2, 4 and 8 steps ahead were within the
 * noise, 4 the best median.) Returns two of OLD's read buffers, for the
 * second pass (memory already touched: fresh memory costs a page fault per 4 KiB).
 */
async function scanPass(run: DiffRun, e: DeltaEncoder, oldFile: ImageSource, newFile: ImageSource): Promise<[Uint8Array, Uint8Array]> {
  const { ps, oldSize, newSize, oldName, newName } = run;
  const oldPadded = Math.ceil(oldSize / ps) * ps;
  const bufs = (): Uint8Array[] => Array.from({ length: AHEAD + 1 }, () => run.alloc());
  const oldBufs = bufs();
  const os = readAhead(oldFile, oldBufs, Math.max(newSize, oldPadded), oldName);
  try {
    let pos = 0;
    for await (const nb of readAhead(newFile, bufs(), newSize, newName)) {
      const ob = (await os.next()).value as Uint8Array;
      e.scan(ob.length === nb.length ? ob : ob.subarray(0, nb.length), nb, pos);
      const oldEnd = Math.min(ob.length, oldPadded - pos);
      if (oldEnd > nb.length) e.indexOld(ob.subarray(nb.length, oldEnd), pos + nb.length);
      pos += ob.length;
      run.onProgress?.(Math.min(pos, newSize), newSize);
    }
    for (let r = await os.next(); r.done !== true; r = await os.next()) {
      e.indexOld(r.value.subarray(0, Math.min(r.value.length, oldPadded - pos)), pos);
      pos += r.value.length;
    }
  } finally {
    await os.return(undefined); // no read left writing into its buffers
  }
  return [oldBufs[0]!, oldBufs[1]!];
}

/**
 * diff's second pass over two files: the changed pages, window by window;
 * those whose record the scan did not work out already (e.needsPages) read
 * back into `ob`/`nb` (a window each) with synchronous reads (from the page
 * cache, just read: a synchronous read call costs a few µs, a promise-based
 * one ~10 µs of this thread and a thread hop; keeping the changed pages from
 * pass 1 instead cost a page fault per 4 KiB of fresh memory, more than
 * reading them again).
 */
async function changedPass(run: DiffRun, e: DeltaEncoder, oldFile: ImageSource, newFile: ImageSource, ob: Uint8Array, nb: Uint8Array): Promise<void> {
  const { ps, oldSize, newSize, oldName, newName } = run;
  const win = STEP / ps;
  const wanted: number[] = [];
  for (const w of groupWindows(e.changedPages(), win)) {
    const base = Math.floor(w[0]! / win) * win;
    wanted.length = 0;
    for (const page of w) if (e.needsPages(page)) wanted.push(page);
    for (let i = 0; i < wanted.length; ) {
      // Runs closer than GAP pages are read as one: a read call costs more than copying a few pages.
      let j = i + 1;
      while (j < wanted.length && wanted[j]! - wanted[j - 1]! <= GAP) j++;
      const at = (wanted[i]! - base) * ps;
      const len = (wanted[j - 1]! - wanted[i]! + 1) * ps;
      await readPagesBack(newFile, nb, at, len, wanted[i]! * ps, newSize, newName);
      await readPagesBack(oldFile, ob, at, len, wanted[i]! * ps, oldSize, oldName);
      i = j;
    }
    for (const page of w) {
      const at = (page - base) * ps;
      // The window holds only the changed pages read back: no other page of it is a candidate in memory.
      await e.encodeChanged(page, ob, at, nb, at, base * ps, at, at + ps);
    }
    await run.flush();
  }
}

/**
 * diff in one pass, where an image is a pipe: NEW's steps against OLD's
 * (`os`) as they come (OLD hashed first when it is a file). With `oldPiped`,
 * OLD's pages past NEW's end are read to its end: they still count in its digest.
 */
async function inOrderPass(run: DiffRun, e: DeltaEncoder, newSteps: AsyncGenerator<Uint8Array>, os: AsyncGenerator<Uint8Array>, oldPiped: boolean): Promise<void> {
  const { ps, oldSize, newSize } = run;
  const oldPadded = Math.ceil(oldSize / ps) * ps;
  let pos = 0;
  for await (const nb of newSteps) {
    const ob = (await os.next()).value as Uint8Array;
    await e.push(ob.subarray(0, nb.length), nb, pos);
    const oldEnd = Math.min(ob.length, oldPadded - pos);
    if (oldPiped && oldEnd > nb.length) e.indexOld(ob.subarray(nb.length, oldEnd), pos + nb.length);
    pos += ob.length;
    await run.flush();
    run.onProgress?.(Math.min(pos, newSize), newSize);
  }
  if (oldPiped) {
    for (let r = await os.next(); r.done !== true; r = await os.next()) {
      e.indexOld(r.value.subarray(0, Math.min(r.value.length, oldPadded - pos)), pos);
      pos += r.value.length;
    }
  }
}

/** One page (a dedup candidate) of `src` into `into`: a synchronous read when `src` is a file (a few µs, where a promise-based read costs ~10 µs of this thread). */
async function readPage(src: ImageSource, into: Uint8Array, ps: number, offset: number, size: number, name: string): Promise<void> {
  await readPagesBack(src, into, 0, ps, offset, size, name);
}

/** Page numbers (ascending) grouped by window of `win` pages. */
function* groupWindows(pages: Iterable<number>, win: number): Generator<number[]> {
  let cur: number[] = [];
  let w = -1;
  for (const p of pages) {
    const pw = Math.floor(p / win);
    if (pw !== w && cur.length > 0) {
      yield cur;
      cur = [];
    }
    w = pw;
    cur.push(p);
  }
  if (cur.length > 0) yield cur;
}

/** `length` bytes of `src` at `offset` into `into`, zeros past its end. */
async function readPages(src: ImageSource, into: Uint8Array, length: number, offset: number, size: number, name: string): Promise<void> {
  const have = Math.max(0, Math.min(length, size - offset));
  if (have > 0) await readFully(src, into, have, offset, name);
  if (have < length) fillInto(into, 0, have, length);
}

/** {@link readPages} into `into` at `at`, with synchronous reads when `src` is a file {@link fileSource} opened. */
async function readPagesBack(src: ImageSource, into: Uint8Array, at: number, length: number, offset: number, size: number, name: string): Promise<void> {
  const fd = fileDescriptors.get(src);
  if (fd === undefined) return readPages(src, into.subarray(at), length, offset, size, name);
  const have = Math.max(0, Math.min(length, size - offset));
  let done = 0;
  while (done < have) {
    const n = readSync(fd, into, at + done, have - done, offset + done);
    if (n === 0) throw new Error(`${name}: file shrank while being read`);
    done += n;
  }
  if (have < length) fillInto(into, 0, at + have, at + length);
}

function deltaChunks(input: DeltaInput): { stream: AsyncIterable<Uint8Array>; name: string } {
  if (typeof input === 'string') return { stream: createReadStream(input, { highWaterMark: 1 << 20 }), name: input };
  if (input instanceof Uint8Array) {
    return {
      stream: (async function* () {
        yield input;
      })(),
      name: 'delta',
    };
  }
  if (input !== null && typeof input === 'object' && Symbol.asyncIterator in input) return { stream: input, name: 'delta' };
  throw argTypeError('delta', 'a path, a Uint8Array or an async iterable of Uint8Array', input);
}

/** The first bytes of a delta (up to 8), and a queue that still yields them. */
async function sniff(stream: AsyncIterable<Uint8Array>): Promise<{ plain: boolean; q: ByteQueue; rest: AsyncIterable<Uint8Array> }> {
  const q = new ByteQueue(stream);
  const head = await q.read(8);
  const plain = !isDeltaMagic(head);
  const copy = head.slice();
  const it = (q as unknown as { it: AsyncIterator<Uint8Array> }).it;
  const cur = (): Uint8Array => (q as unknown as { cur: Uint8Array }).cur;
  const rest: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: async function* () {
      if (copy.length > 0) yield copy;
      const c = cur();
      if (c.length > 0) yield c;
      for (;;) {
        const r = await it.next();
        if (r.done === true) return;
        yield r.value;
      }
    },
  };
  return { plain, q: new ByteQueue(rest), rest };
}

interface Out {
  fh: FileHandle;
  path: string;
}

async function makeTemp(target: string, size: number, name: (output: string) => string = tempPathFor): Promise<Out> {
  const path = name(target);
  const fh = await open(path, 'wx+');
  await fh.truncate(size);
  return { fh, path };
}

/** Makes a finished temp file `output`: synced, closed, renamed into place. */
async function commitTemp(t: Out, output: string): Promise<void> {
  await t.fh.sync();
  await t.fh.close();
  await rename(t.path, output);
}

async function dropTemp(t: Out | null): Promise<void> {
  if (t === null) return;
  await t.fh.close().catch(() => undefined);
  await unlink(t.path).catch(() => undefined);
}

/** Writes `len` bytes of `data` from `from` at file offset `pos`, synchronously. */
function writeAllSync(fd: number, data: Uint8Array, from: number, len: number, pos: number): void {
  let done = 0;
  while (done < len) done += writeSync(fd, data, from + done, len - done, pos + done);
}

/** The output file's dirty bytes written back while the work goes on: datasync every this many bytes. */
const SYNC_EVERY = 64 << 20;

/**
 * NEW's steps into a temporary file: the non-zero page runs of each step
 * (zero pages stay holes of the truncated file), written with synchronous
 * writes (a run is often a few pages: a promise-based write costs ~10 µs of
 * the main thread per call, four times a synchronous one, and the runs are
 * only copies into the page cache); every {@link SYNC_EVERY} bytes a datasync
 * in the background, so that the final fsync has little left to write back
 * (the kernel would otherwise hold all of NEW dirty until then) while OLD's
 * next step is read ahead and the next step computed.
 */
class StepWriter {
  private readonly writeBack = new WriteBack(SYNC_EVERY);

  /** `syncAhead`: datasync as it goes (the final output; not a temporary image). */
  constructor(
    private readonly fh: FileHandle,
    private readonly ps: number,
    private readonly syncAhead: boolean,
  ) {}

  /** Writes a step. */
  write(data: Uint8Array, zero: Uint8Array, offset: number): void {
    const { fh, ps } = this;
    const pages = zero.length;
    let i = 0;
    while (i < pages) {
      if (zero[i] === 1) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < pages && zero[j] === 0) j++;
      writeAllSync(fh.fd, data, i * ps, (j - i) * ps, offset + i * ps);
      if (this.syncAhead) this.writeBack.wrote(fh, (j - i) * ps);
      i = j;
    }
  }

  /** Reads back a page already handed to {@link StepWriter.write} (zero past the written end). */
  async readPage(off: number, into: Uint8Array): Promise<void> {
    let done = 0;
    const ps = this.ps;
    while (done < ps) {
      const r = (await this.fh.read(into, done, ps - done, off + done)).bytesRead;
      if (r === 0) break;
      done += r;
    }
    fillInto(into, 0, done, ps);
  }

  /** Every write done (and the background datasync). */
  async done(): Promise<void> {
    await this.writeBack.settled();
  }

  /** Waits for the datasync in flight (its error ignored). */
  async abort(): Promise<void> {
    await this.writeBack.quiet();
  }
}

/** One stage: OLD (path) + one delta → an open temp file (`final`: the output, written back as it goes). */
async function applyOne(
  oldPath: string,
  delta: DeltaInput,
  target: string,
  options: PatchImageOptions,
  index: number,
  oldLabel: string,
  final = false,
  workers: FrameWorkers | null = null,
): Promise<{ out: Out; stats: DeltaStats }> {
  const { stream, name } = deltaChunks(delta);
  const { plain, q, rest } = await sniff(stream);
  const oldSt = await stat(oldPath);
  // A regular file, or an empty device (/dev/null: a delta made against nothing).
  if (!oldSt.isFile() && !(oldSt.isCharacterDevice() && oldSt.size === 0)) throw new Error(`${oldLabel}: not a regular file`);
  if (plain) return applyPlain(oldPath, rest, target, options, name);
  const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
  const applier = await DeltaApplier.open(q, { hasher, compressor, workers }, { pageSize: options.pageSize, verify: options.verify, oldName: oldLabel });
  const h = applier.header;
  if (oldSt.size !== h.oldSize) throw wrongBaseSize(oldLabel, oldSt.size, h.oldSize);
  const oldFh = await open(oldPath, 'r');
  let out: Out | null = null;
  try {
    out = await makeTemp(target, h.newSize, options.tempPath);
    const o = out;
    const ps = h.pageSize;
    const w = new StepWriter(o.fh, ps, final);
    const gen = applier.steps({
      oldFile: {
        read: async (into, length, position) => (await oldFh.read(into, 0, length, position)).bytesRead,
        // From the page cache a read is a copy: synchronously, without a promise and a thread hop.
        readSync: (into, length, position) => readSync(oldFh.fd, into, 0, length, position),
      },
      readNew: (off, into) => w.readPage(off, into),
    });
    try {
      for (;;) {
        const r = await gen.next();
        if (r.done === true) break;
        // The write of this step runs while the next one is computed (the applier's buffers take turns).
        const v = r.value;
        w.write(v.data, v.zero, v.offset);
        options.onProgress?.(Math.min(v.offset + v.data.length, h.newSize), h.newSize, index);
      }
      await w.done();
    } catch (err) {
      await w.abort();
      await gen.return(applier.stats).catch(() => undefined); // its buffers go back
      throw err;
    }
    return { out: o, stats: applier.stats };
  } catch (err) {
    await dropTemp(out);
    throw err;
  } finally {
    await oldFh.close();
  }
}

async function applyPlain(oldPath: string, rest: AsyncIterable<Uint8Array>, target: string, options: PatchImageOptions, name: string): Promise<{ out: Out; stats: DeltaStats }> {
  const ps = options.pageSize ?? 4096;
  const path = (options.tempPath ?? tempPathFor)(target);
  await copyFile(oldPath, path);
  const store = new FilePageStore({ path: () => path, cacheSize: 64 << 20 });
  try {
    // The decoder core fed directly (no stream classes to load for a plain delta).
    const core = new DecoderCore({ store, pageSize: ps, emitPages: false });
    let bytes = 0;
    try {
      for await (const c of rest) {
        bytes += c.length;
        core.feed(c);
        await core.drain();
      }
      core.end();
      await core.drain();
    } finally {
      core.dispose();
    }
    const r = core.stats.records;
    const size = (await stat(path)).size;
    const oldSize = (await stat(oldPath)).size;
    const stats = emptyStats('qemu', ps, oldSize, size);
    stats.zero = r.ZERO;
    stats.page = r.PAGE;
    stats.xbzrle = r.XBZRLE;
    stats.deltaBytes = bytes;
    stats.rawBytes = bytes;
    const fh = await open(path, 'r+');
    return { out: { fh, path }, stats };
  } catch (err) {
    await store.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    if (err instanceof XbzrleError) throw new XbzrleError(err.code, `${name}: ${err.message}`, { offset: err.offset, cause: err });
    throw err;
  }
}

/**
 * Applies a delta, or a chain of deltas (each made against the result of the
 * one before), to OLD and writes NEW. Nothing is written to `output` unless
 * every check passed: every delta's frames and trailer, OLD's size and
 * content digest (unless `verify: false`), the page size, and NEW's digest.
 * NEW goes to a temporary file next to `output` (zero pages left as holes),
 * is fsynced and renamed into place. A chain is applied in one pass: OLD is
 * read once, in order, each step going through every delta in turn, and NEW
 * is written once (see lib/delta/chain.ts and docs/delta-format.md for how
 * references into the intermediate images are resolved); deltas given as
 * pipes or streams are first copied to temporary files next to `output`.
 * Deltas of different page sizes, or plain streams, in a chain are applied
 * one by one through temporary intermediate images.
 *
 * Plain RAM record streams (`format: 'qemu'` deltas) are recognised (no
 * magic) and applied as before: they carry no checksum.
 *
 * @returns the counters of each delta applied, in order
 * @throws XbzrleError (`ERR_DELTA_*`) or the file system's errors; the output is then untouched.
 *   The error's non-enumerable `deltaIndex` property says which delta of the list failed.
 *
 * @example
 * ```ts
 * await patchImage('base.img', ['d1.xbzd', 'd2.xbzd'], 'snap2.img')
 * ```
 */
export async function patchImage(oldPath: string, deltas: DeltaInput | DeltaInput[], output: string, options: PatchImageOptions = {}): Promise<DeltaStats[]> {
  if (typeof oldPath !== 'string') throw argTypeError('old', 'a path', oldPath);
  if (typeof output !== 'string') throw argTypeError('output', 'a path', output);
  const threads = checkThreads(options.threads);
  const list = Array.isArray(deltas) ? deltas : [deltas];
  if (list.length === 0) throw argTypeError('deltas', 'one delta or more', deltas);
  await refuseExisting(output, options.force);
  const workers = threads > 1 ? FramePool.create(threads, await loadZstd()) : null;
  try {
    return await patchWith(oldPath, list, output, options, workers);
  } finally {
    workers?.dispose();
  }
}

async function patchWith(oldPath: string, list: DeltaInput[], output: string, options: PatchImageOptions, workers: FrameWorkers | null): Promise<DeltaStats[]> {
  if (list.length === 1) return patchSequential(oldPath, list, output, options, workers);
  // A chain: every delta made readable at random (pipes spooled to temp files), then one pass
  // (lib/delta/chain.ts) when all are containers of one page size; else delta by delta.
  const opened: ChainInput[] = [];
  try {
    for (let i = 0; i < list.length; i++) {
      opened.push(
        await chainInput(list[i]!, () => (options.tempPath ?? tempPathFor)(output)).catch((err: unknown) => {
          throw tagDelta(err, i);
        }),
      );
    }
    const ps = opened[0]!.pageSize;
    if (opened.some((d) => d.pageSize === 0 || d.pageSize !== ps)) return await patchSequential(oldPath, opened.map((d) => d.input), output, options, workers);
    return await patchChain(oldPath, opened, output, options, workers);
  } finally {
    for (const d of opened) await d.close();
  }
}

/** Applies the deltas one by one, each through a temporary intermediate image. */
async function patchSequential(oldPath: string, list: DeltaInput[], output: string, options: PatchImageOptions, workers: FrameWorkers | null): Promise<DeltaStats[]> {
  const all: DeltaStats[] = [];
  let cur = oldPath;
  let curLabel = oldPath;
  let prev: Out | null = null;
  try {
    for (let i = 0; i < list.length; i++) {
      const { out, stats } = await applyOne(cur, list[i]!, output, options, i, curLabel, i === list.length - 1, workers).catch((err: unknown) => {
        // Which delta of the chain failed, for callers naming it.
        throw tagDelta(err, i);
      });
      all.push(stats);
      await dropTemp(prev);
      prev = out;
      cur = out.path;
      curLabel = `the result of delta ${i + 1}`;
    }
    await commitTemp(prev!, output);
    prev = null;
    return all;
  } finally {
    await dropTemp(prev);
  }
}

/** A delta of a chain, readable in order and at random. */
interface ChainInput {
  /** What the sequential path is given (a path or the bytes). */
  input: string | Uint8Array;
  /** Its page size when it is a container (0: a plain stream, or too short to say). */
  pageSize: number;
  chunks(): AsyncIterable<Uint8Array>;
  random: RandomRead;
  close(): Promise<void>;
}

/** A path to a regular file as it is, bytes as they are; anything else (pipes, streams) copied to a temp file first. */
async function chainInput(input: DeltaInput, spoolPath: () => string): Promise<ChainInput> {
  const head = new Uint8Array(16);
  const kind = (h: Uint8Array, n: number): number => (n === 16 && isDeltaMagic(h) ? ((h[12]! << 24) | (h[13]! << 16) | (h[14]! << 8) | h[15]!) >>> 0 : 0);
  if (input instanceof Uint8Array) {
    head.set(input.subarray(0, 16));
    return {
      input,
      pageSize: kind(head, Math.min(16, input.length)),
      chunks: async function* () {
        yield input;
      },
      random: {
        read: async (into, length, position) => {
          const n = Math.max(0, Math.min(length, input.length - position));
          into.set(input.subarray(position, position + n));
          return n;
        },
      },
      close: async () => undefined,
    };
  }
  let path: string;
  let spool: string | null = null;
  if (typeof input === 'string' && (await stat(input)).isFile()) path = input;
  else {
    const { stream } = deltaChunks(input);
    spool = spoolPath();
    const fh = await open(spool, 'wx');
    try {
      let pos = 0;
      for await (const c of stream) {
        let done = 0;
        while (done < c.length) done += (await fh.write(c, done, c.length - done, pos + done)).bytesWritten;
        pos += c.length;
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(spool).catch(() => undefined);
      throw err;
    }
    await fh.close();
    path = spool;
  }
  const fh = await open(path, 'r');
  const p = path;
  const n = (await fh.read(head, 0, 16, 0)).bytesRead;
  return {
    input: p,
    pageSize: kind(head, n),
    chunks: () => createReadStream(p, { highWaterMark: 1 << 20 }),
    random: { read: async (into, length, position) => (await fh.read(into, 0, length, position)).bytesRead },
    close: async () => {
      await fh.close().catch(() => undefined);
      if (spool !== null) await unlink(spool).catch(() => undefined);
    },
  };
}

/** A chain in one pass (lib/delta/chain.ts): BASE read once, NEW written once. */
async function patchChain(oldPath: string, deltas: ChainInput[], output: string, options: PatchImageOptions, workers: FrameWorkers | null): Promise<DeltaStats[]> {
  const oldSt = await stat(oldPath);
  // A regular file, or an empty device (/dev/null: a delta made against nothing).
  if (!oldSt.isFile() && !(oldSt.isCharacterDevice() && oldSt.size === 0)) throw tagDelta(new Error(`${oldPath}: not a regular file`), 0);
  const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
  const chain = await ChainApplier.open(
    oldSt.size,
    deltas.map((d) => ({ chunks: d.chunks(), random: d.random })),
    { hasher, compressor, workers },
    { pageSize: options.pageSize, verify: options.verify, baseName: oldPath },
  );
  const headers = chain.headers;
  const last = headers[headers.length - 1]!;
  const ps = last.pageSize;
  const baseFh = await open(oldPath, 'r');
  let out: Out | null = null;
  try {
    out = await makeTemp(output, last.newSize, options.tempPath);
    const o = out;
    const w = new StepWriter(o.fh, ps, true);
    const gen = chain.steps({
      base: { read: async (into, length, position) => (await baseFh.read(into, 0, length, position)).bytesRead },
      readOut: (off, into) => w.readPage(off, into),
    });
    let stats: DeltaStats[];
    try {
      for (;;) {
        const r = await gen.next();
        if (r.done === true) {
          stats = r.value;
          break;
        }
        // The write of this step runs while the next one is computed (three buffers take turns).
        const v = r.value;
        w.write(v.data, v.zero, v.offset);
        options.onProgress?.(Math.min(v.offset + v.data.length, last.newSize), last.newSize, headers.length - 1);
      }
      await w.done();
    } catch (err) {
      await w.abort();
      await gen.return([]).catch(() => undefined); // its buffers go back
      throw err;
    }
    await commitTemp(o, output);
    out = null;
    return stats;
  } finally {
    await dropTemp(out);
    await baseFh.close();
  }
}

/**
 * Checks a delta without applying it: its header, every frame and record,
 * its trailer. With `old`, also that OLD is its base and that the result
 * matches NEW's digest (the result goes to a temporary file, then deleted).
 *
 * @returns the counters (from the records; `unchanged` only with `old`)
 */
export async function verifyDelta(delta: DeltaInput, old?: string, options: VerifyDeltaOptions = {}): Promise<DeltaStats> {
  if (old !== undefined) {
    const target = join(tmpdir(), `xbzrle-verify-${process.pid}-${++tempSeq}`);
    const { out, stats } = await applyOne(old, delta, target, { pageSize: options.pageSize, force: true }, 0, old);
    await dropTemp(out);
    return stats;
  }
  const { stream, name } = deltaChunks(delta);
  const { plain, q, rest } = await sniff(stream);
  if (plain) {
    const ps = options.pageSize ?? 4096;
    const stats = emptyStats('qemu', ps, 0, 0);
    // The shared parse-and-apply loop with a validate-only loader: the checks and messages of `decode`.
    const loader = new RamLoader({ pageSize: ps, store: null });
    const applier = new RamApplier(new RamRecordParser({ pageSize: ps }), loader, (r) => {
      if (r.kind === 'mem_size') stats.newSize = r.offset;
    });
    const counted = async function* (): AsyncGenerator<Uint8Array> {
      for await (const c of rest) {
        stats.deltaBytes += c.length;
        yield c;
      }
    };
    try {
      await applier.applyAll(counted());
    } catch (err) {
      if (err instanceof XbzrleError && !err.message.startsWith(name)) throw new XbzrleError(err.code, `${name}: ${err.message}`, { offset: err.offset, cause: err });
      throw err;
    }
    const records = loader.stats.records;
    stats.zero = records.ZERO;
    stats.page = records.PAGE;
    stats.xbzrle = records.XBZRLE;
    stats.rawBytes = stats.deltaBytes;
    return stats;
  }
  const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
  const reader = new DeltaReader(q, hasher, compressor);
  const h = await reader.readHeader();
  if (options.pageSize !== undefined && options.pageSize !== h.pageSize) throw new XbzrleError('ERR_DELTA_PAGE_SIZE', `the delta's page size is ${h.pageSize}, not ${options.pageSize}`);
  const stats = emptyStats('xbzrle', h.pageSize, h.oldSize, h.newSize);
  const cursor = new RecordCursor(h);
  for (;;) {
    const frame = await reader.nextFrame();
    if (frame === null) break;
    cursor.reset(frame, reader.frameAt, reader.frames - 1);
    while (cursor.read()) {
      switch (cursor.kind) {
        case RecordKind.Zero:
          stats.zero++;
          break;
        case RecordKind.Page:
          stats.page++;
          break;
        case RecordKind.Xbzrle:
          if (checkDelta(frame, cursor.at, cursor.length, h.pageSize) < 0) {
            throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${reader.frames - 1} at byte ${reader.frameAt} (bad XBZRLE delta for page ${cursor.offset})`, { offset: reader.frameAt });
          }
          stats.xbzrle++;
          break;
        case RecordKind.Ref:
          if (cursor.refKind === REF_OLD) stats.refOld++;
          else stats.refNew++;
          break;
        default:
          break;
      }
    }
  }
  if (!cursor.sawEos) throw new XbzrleError('ERR_DELTA_CORRUPT', 'delta is corrupt: records end without EOS');
  const t = reader.trailer!;
  setTotals(stats, t.frames, t.rawBytes, reader.position, t.oldDigest, t.newDigest);
  return stats;
}
