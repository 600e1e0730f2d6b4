import fs from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { argTypeError, argRangeError } from '../errors.js';
import { copyInto, fillInto } from '../codec/copy.js';
import { getEngine } from '../codec/wasm/engine.js';
import type { RamBlock } from '../format/record-writer.js';
import type { PageLocation, PageStore } from './page-store.js';
import { WriteBack } from './write-back.js';
import { Gather, WriteQueue } from './write-queue.js';
import { PageBits } from './page-bits.js';

/** Most bytes {@link FilePageStore.prepare} reads at once: the page asked for and those after it. */
const READ_AHEAD = 256 << 10;
/** Most pages of one run taken by {@link FilePageStore.putBorrowed} (one `writev`: at most IOV_MAX = 1024 pieces). */
const BORROW_PAGES = 256;
/** The least cache a store with declared blocks sets up (see FilePageStore#neededSlots): under V8's 64 MB of external memory that trigger collections. */
const SMALL_CACHE = 16 << 20;

/** Options of {@link FilePageStore}. */
export interface FilePageStoreOptions {
  /** Folder holding one image per block, named by {@link blockFileName}; created (with its parents) when missing. Used when `path` is not given. */
  dir?: string;
  /** The image file of `block`. Takes precedence over `dir`. */
  path?: (block: string) => string;
  /** Set each file's length to the block's MEM_SIZE length when it is declared (default true). */
  truncate?: boolean;
  /** fsync every file in `finish()` (default true). */
  fsync?: boolean;
  /**
   * Largest single write in bytes: adjacent cached pages go out together up
   * to this much (default 1 MiB). Writes go through 4 staging buffers of this
   * size, reused.
   */
  bufferSize?: number;
  /**
   * Bytes of pages kept in memory (default 64 MiB). Written pages wait there
   * and go out when the cache is full, on `flush()` and on `finish()`, in
   * file order with adjacent pages in one write; reads of cached pages do not
   * touch the file. An XBZRLE sender's deltas are against pages in its own
   * cache (QEMU's default: 64 MiB), so a cache at least as large as the
   * sender's keeps most delta bases in memory. Below one page, every page is
   * written at once. A store whose blocks were declared (`declare`) before its
   * first page takes no more than they need, and at least 16 MiB.
   */
  cacheSize?: number;
  /** @internal See {@link PageStore.parallelAfter} (default 4 MiB; tests set 0). */
  parallelAfter?: number;
}

/**
 * The file name of a block's image: its id with every '/' (and NUL, which no
 * file name can hold) replaced by '_', plus `.bin`.
 */
export function blockFileName(block: string): string {
  return block.replace(/[/\0]/g, '_') + '.bin';
}

/** A block and its image file. */
export interface BlockFile {
  /** Block name. */
  block: string;
  /** Its image file. */
  path: string;
}

interface OpenFile {
  path: string;
  handle: Promise<FileHandle>;
  /** Bytes from here on were zeros when the file was opened (its size then, lowered by truncation), or -1 until known. */
  zerosFrom: number;
  /** True when another block's file is the same path: neither then knows what the other wrote, so no page is known zero. */
  aliased: boolean;
  /** The handle once opened (for synchronous writes), else null. */
  opened: FileHandle | null;
}

/** What a block's file may hold that the store gave it (see {@link FilePageStore.knownZero}). */
interface GivenData {
  /** Pages (of the cache's page size) given data: put, filled, or located to be written. */
  pages: PageBits;
  /** The lowest offset written with data of another size (Infinity: none). */
  oddFrom: number;
  /** Pages left as holes (known zeros then): still zeros while not given data since. */
  holes: PageBits;
}

/**
 * A {@link PageStore} over one image file per block: pages are read and
 * written in place through a `FileHandle`, so decoding a 64 GiB image needs
 * memory for a page cache and a write buffer, not the image. Files are opened
 * (created if missing) on first use; bytes never written read as zeros, and
 * files grown by `truncate` stay sparse.
 *
 * Pages are cached (`cacheSize`, write-back): reading a cached page (an
 * XBZRLE delta's base) costs no I/O. Pages put in file order (holes
 * allowed), as a decoder of a migration stream puts them, are written out
 * as soon as they fill a `bufferSize` window (and then keep at most an
 * eighth of the cache); pages in another order wait in the cache, and a
 * page written again before it leaves costs no I/O. A decoder's PAGE records
 * of pages not cached, in file order, skip the cache: they are written
 * straight from its input, a run at a time with one `writev`. When the cache is full,
 * its written pages go out sorted by file and offset, adjacent ones
 * gathered into writes of up to `bufferSize` bytes; clean pages are then
 * replaced oldest first, recently used ones given a second chance. Writes go
 * through a few reused staging buffers and are made synchronously (a copy
 * into the OS page cache; with `fsync`, the disk is asked to catch up in the
 * background every 16 MiB). A failed write fails the next `flush()`,
 * `finish()` or read (and calls that wait for a buffer). Filling a page with
 * zeros that the file holds as zeros already (past its size when opened, or
 * left a hole, and not written since) writes nothing: the page stays a hole.
 * Pages a decoder needs that are not cached are read synchronously (from the
 * OS page cache, microseconds), a few at a time, more while misses follow
 * each other in file order. The cache holds pages of one size, the first one
 * seen; a call with another size or an unaligned offset writes the cache out
 * first and goes to the file directly.
 *
 * It has the in-place capability of {@link PageStore.locate}: a cached page
 * is decoded where it lies (its slot is marked to be written); a page not
 * cached, or a cache full of pages waiting to be written, gives null until
 * {@link FilePageStore.prepare} has read the page in or written pages out.
 * A decoder with worker threads (`threads`) moves the cache to the SIMD
 * kernel's shared memory, where the workers write pages into it.
 *
 * Calls, `flush()` included, must not overlap (the decoder waits for each
 * one). `flush()` writes out cached pages, `finish()` flushes, fsyncs and closes; `close()` closes
 * without writing (after an error).
 *
 * @example
 * ```ts
 * const store = new FilePageStore({ dir: 'out' })          // out/pc.ram.bin, …
 * await pipeline(input, new XbzrleDecodeStream({ store, emitPages: false }))
 * ```
 */
export class FilePageStore implements PageStore {
  private readonly pathOf: (block: string) => string;
  private readonly truncate: boolean;
  private readonly fsync: boolean;
  private readonly files = new Map<string, OpenFile>();
  /** Writes gathered pages, in order, through reused staging buffers of `bufferSize`. */
  private readonly writes: WriteQueue;
  private readonly cacheSize: number;
  /** Each block's length as last declared ({@link FilePageStore.declare}): what the cache need hold at most. */
  private readonly declared = new Map<string, number>();
  private closed = false;
  /** True once `finish()` succeeded. */
  private finished = false;
  /**
   * @internal See {@link PageStore.parallelAfter}: the writes of a decode into
   * files take most of its time, and a stream's first round is PAGE and ZERO
   * records, which need no worker; the workers start after 4 MiB of deltas
   * (a 512 MiB stream with 3 800 small ones: 0.82 s with 2 threads instead of
   * 0.88 s, as with 1).
   */
  readonly parallelAfter: number;
  /** With `fsync`: the background write-back (its failure is reported by `finish()`). */
  // Every 16 MiB: the final fsync then waits for little (512 MiB decode: 0.81 s against 0.83 s with 64 MiB,
  // medians of 7 interleaved runs; 8 MiB 0.79 s, kept at 16 for slower disks' sake).
  private readonly writeBack = new WriteBack(16 << 20);

  // ---- The page cache: `capacity` slots of `pageSize` bytes in `slab`, set up by the first page.
  private pageSize = 0;
  private capacity = 0;
  private slab: Uint8Array = new Uint8Array(0);
  /** Per block: page offset → slot. */
  private readonly index = new Map<string, Map<number, number>>();
  private slotBlock: (string | null)[] = [];
  private slotOffset = new Float64Array(0);
  /** 1 while a slot holds a page not yet written to its file. */
  private dirty = new Uint8Array(0);
  /** 1 when a slot was used since the clock hand last passed it. */
  private referenced = new Uint8Array(0);
  private dirtyCount = 0;
  /** Slots handed out so far (they fill in order before any is replaced). */
  private used = 0;
  private hand = 0;
  private flushing: Promise<void> | null = null;
  /** The `dir` option, when block files are named in it (created on first use). */
  private readonly dir: string | undefined;
  /** Per block: what the store gave its file, to tell pages the file holds as zeros. */
  private readonly data = new Map<string, GivenData>();
  /** Per block: the end of what was written in place without touching the file (holes). */
  private readonly extent = new Map<string, number>();
  private readonly location: PageLocation = { bytes: new Uint8Array(0), at: 0 };
  /** Slots of pages written out with their window, oldest first (a ring; see `takeSlot`). */
  private streamed = new Int32Array(0);
  private streamedHead = 0;
  private streamedCount = 0;
  /** Keep the cache in the SIMD kernel's shared memory (worker threads write into it). */
  private shared = false;
  /** Pages read ahead by `prepare` (allocated on first use). */
  private readBuffer: Uint8Array | null = null;
  // ---- The window of pages put or filled last, in file order (see `extendRun`).
  private runBlock: string | null = null;
  private runStart = 0;
  private runLast = -1;
  private runPages = 0;
  // ---- Read-ahead: where the last read of `prepare` ended, and how many pages the next one reads.
  private readBlock: string | null = null;
  private readEnd = -1;
  private readPages = 1;
  // Pages taken by putBorrowed: one run in file order, the caller's views, written at once.
  private readonly borrowed: Uint8Array[] = [];
  private borrowBlock: string | null = null;
  private borrowFile: FileHandle | null = null;
  private borrowStart = 0;

  constructor(options: FilePageStoreOptions) {
    if (options === null || typeof options !== 'object') throw argTypeError('options', 'an object', options);
    const { dir, path } = options;
    if (path !== undefined && typeof path !== 'function') throw argTypeError('options.path', 'a function', path);
    if (path === undefined && typeof dir !== 'string') throw argTypeError('options.dir', 'a string (or give options.path)', dir);
    this.pathOf = path ?? ((block) => join(dir!, blockFileName(block)));
    this.dir = path === undefined ? dir : undefined;
    this.truncate = options.truncate ?? true;
    this.fsync = options.fsync ?? true;
    const size = options.bufferSize ?? 1 << 20;
    if (!Number.isSafeInteger(size) || size < 1) throw argRangeError('options.bufferSize', 'a positive integer', size);
    this.writes = new WriteQueue((block, offset, data) => this.writeAt(block, offset, data), size);
    const cacheSize = options.cacheSize ?? 64 << 20;
    if (!Number.isSafeInteger(cacheSize) || cacheSize < 0 || cacheSize > bufferConstants.MAX_LENGTH) {
      throw argRangeError('options.cacheSize', `a non-negative integer up to ${bufferConstants.MAX_LENGTH}`, cacheSize);
    }
    this.cacheSize = cacheSize;
    this.parallelAfter = options.parallelAfter ?? 4 << 20;
  }

  /** The blocks opened so far (`block`) and their image files (`path`). */
  openFiles(): BlockFile[] {
    return [...this.files].map(([block, f]) => ({ block, path: f.path }));
  }

  get(block: string, offset: number, into: Uint8Array): void | Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    this.releaseBorrowed();
    const size = into.length;
    if (this.cached(offset, size)) {
      const slot = this.index.get(block)?.get(offset);
      if (slot !== undefined) {
        into.set(this.slab.subarray(slot * size, slot * size + size));
        this.referenced[slot] = 1;
        return undefined;
      }
      return this.readAt(block, offset, into).then(() => undefined);
    }
    // Another size: the file must hold every written page first.
    return this.flush().then(() => this.readAt(block, offset, into).then(() => undefined));
  }

  put(block: string, offset: number, data: Uint8Array): void | Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    this.releaseBorrowed();
    const size = data.length;
    if (!this.cached(offset, size, true)) {
      this.dataAt(block, offset);
      return this.flush().then(() => {
        this.forget(block, offset, size);
        return this.writeAt(block, offset, data);
      });
    }
    const slot = this.claim(block, offset, true);
    // Full of written pages: write them out, then take a slot (always free once they are copied out).
    if (slot < 0) return this.writeOut().then(() => this.put(block, offset, data));
    copyInto(this.slab, slot * size, data); // the slab may be the kernel's shared memory
    return this.extendRun(block, offset);
  }

  async declare(blocks: readonly RamBlock[]): Promise<void> {
    this.releaseBorrowed();
    for (const b of blocks) {
      this.declared.set(b.id, b.length);
      const handle = await this.handle(b.id);
      if (this.truncate) {
        await this.flush();
        await handle.truncate(b.length);
        const f = this.files.get(b.id)!;
        if (f.zerosFrom > b.length) f.zerosFrom = b.length; // cut off, then zeros when grown again
        // Cached pages past the new end are gone from the file, and so are holes written there.
        if (b.length < Number.MAX_SAFE_INTEGER) this.forget(b.id, b.length, Number.MAX_SAFE_INTEGER - b.length);
        if ((this.extent.get(b.id) ?? 0) > b.length) this.extent.set(b.id, b.length);
      }
    }
  }

  /**
   * Where the page at `offset` lies in the cache (see {@link PageStore.locate}):
   * its slot, marked to be written (the caller writes it). With `create`, a
   * page not cached gets a slot without being read (it is overwritten whole).
   * Null when the page is not cached (and `create` is false), when the cache
   * must be written out first, or for a page the cache does not take (another
   * size, unaligned): call {@link FilePageStore.prepare}, or use `get`/`put`.
   */
  locate(block: string, offset: number, length: number, create: boolean): PageLocation | null {
    this.releaseBorrowed();
    if (this.closed || !this.cached(offset, length, create)) return null;
    const slot = this.claim(block, offset, create);
    if (slot < 0) return null;
    const loc = this.location;
    loc.bytes = this.slab;
    loc.at = slot * length;
    return loc;
  }

  /**
   * Makes {@link FilePageStore.locate} of the page serve it: writes the cache
   * out when it has no room, then (unless `create`) reads the page into a slot.
   */
  async prepare(block: string, offset: number, length: number, create: boolean): Promise<void> {
    if (this.closed) throw closedError();
    this.releaseBorrowed();
    if (!this.cached(offset, length, true) || this.index.get(block)?.has(offset) === true) return;
    if (!this.hasRoom()) await this.writeOut();
    if (create) return; // locate takes a slot
    // Read ahead: a decoder asks for pages in file order. A miss just after the last
    // read (within its length) doubles the next read (up to READ_AHEAD bytes, and a quarter of the cache):
    // the pages after this one that are not cached come in the same read, each given
    // a slot while there are clean ones. A miss elsewhere (deltas scattered over the
    // image) reads its page alone rather than pages no record asks for.
    const sequential = block === this.readBlock && offset >= this.readEnd && offset - this.readEnd <= this.readPages * length;
    const limit = Math.max(1, Math.min(Math.floor(READ_AHEAD / length), this.capacity >> 2));
    const most = sequential ? Math.min(limit, this.readPages * 2) : 1;
    let n = 1;
    const pages = this.index.get(block);
    while (n < most && pages?.has(offset + n * length) !== true) n++;
    const into = (this.readBuffer ??= new Uint8Array(Math.max(READ_AHEAD, length))).subarray(0, n * length);
    const got = await this.readAt(block, offset, into);
    let k = 0;
    for (; k < n && (k === 0 || k * length < got); k++) {
      const slot = this.takeSlot();
      if (slot < 0) break; // the first one always has one (room was made)
      this.slab.set(into.subarray(k * length, k * length + length), slot * length);
      this.map(slot, block, offset + k * length);
    }
    this.readBlock = block;
    this.readEnd = offset + k * length;
    this.readPages = n;
  }

  /** Records that bytes up to `end` of `block` were written (in place or left as holes of zeros). */
  written(block: string, end: number): void {
    if (end > (this.extent.get(block) ?? 0)) this.extent.set(block, end);
  }

  /**
   * @internal A page the caller knows the file holds as zeros (a new file's
   * page never written) and that stays zeros: left a hole, as a zero fill of
   * it would be, without asking whether the file knows it.
   */
  hole(block: string, offset: number, length: number): void | Promise<void> {
    this.releaseBorrowed();
    this.written(block, offset + length);
    if (!this.cached(offset, length, true)) return undefined; // (the cache takes its page size from the first page, a hole too)
    this.given(block).holes.add(offset / length);
    return this.extendRun(block, offset);
  }

  /** Sets `length` bytes from `offset` to `byte`, in the cache when it takes the page (else through `put`). */
  fill(block: string, offset: number, length: number, byte: number): void | Promise<void> {
    this.releaseBorrowed();
    // Zeros over zeros: a hole (the file is made long enough when finished), in the window like a page.
    if (byte === 0 && this.knownZero(block, offset, length)) return this.hole(block, offset, length);
    const loc = this.locate(block, offset, length, true);
    if (loc !== null) {
      fillInto(loc.bytes, byte, loc.at, loc.at + length);
      return this.extendRun(block, offset);
    }
    return this.put(block, offset, new Uint8Array(length).fill(byte));
  }

  /** Writes out every cached page not yet in its file (they stay cached), and waits for the writes. */
  async flush(): Promise<void> {
    this.releaseBorrowed();
    await this.writeOut();
    await this.writes.drain();
  }

  /**
   * @internal A page put without a copy (see {@link PageStore.putBorrowed}):
   * pages put in file order, of the cache's page size, not cached, into a
   * file open already, gather as views of the
   * caller's memory and are written with one `writev` (synchronously, as
   * other writes) by {@link FilePageStore.releaseBorrowed}, when the run
   * breaks or fills, or before any other call does its work. A decoder
   * reading a stream in file order so writes its PAGE records straight from
   * its input, with none of the two copies through the cache and a staging
   * buffer. False when the page does not qualify (nor while a queued write
   * covers it): `put` it.
   */
  putBorrowed(block: string, offset: number, data: Uint8Array): boolean {
    const size = data.length;
    if (this.closed || size !== this.pageSize || offset % size !== 0 || this.flushing !== null || this.writes.failed) return false;
    // A write queued before over this page would land after this one (queued writes run on a later tick).
    if (!this.writes.idle && this.writes.writing(block, offset, offset + size)) return false;
    const f = this.files.get(block);
    // (Not into a file another block shares: its cached pages there would go out after these.)
    if (f === undefined || f.opened === null || f.aliased || this.index.get(block)?.has(offset) === true) return false;
    const file = f.opened;
    const n = this.borrowed.length;
    if (n > 0 && (block !== this.borrowBlock || offset !== this.borrowStart + n * size || n === BORROW_PAGES)) this.releaseBorrowed();
    if (this.borrowed.length === 0) {
      this.borrowBlock = block;
      this.borrowFile = file;
      this.borrowStart = offset;
    }
    this.borrowed.push(data);
    this.given(block).pages.add(offset / size);
    return true;
  }

  /** @internal Writes the pages {@link FilePageStore.putBorrowed} took (the caller's memory is its own again); throws when the write fails. */
  releaseBorrowed(): void {
    const pieces = this.borrowed;
    const file = this.borrowFile;
    if (pieces.length === 0 || file === null) return;
    const start = this.borrowStart;
    const bytes = pieces.length * this.pageSize;
    try {
      let done = fs.writevSync(file.fd, pieces, start);
      // A short write (rare: a full disk reports its error on the next call): the rest piece by piece.
      for (let i = 0, at = 0; done < bytes && i < pieces.length; at += pieces[i]!.length, i++) {
        const piece = pieces[i]!;
        while (done < at + piece.length) done += fs.writeSync(file.fd, piece, done - at, at + piece.length - done, start + done);
      }
    } finally {
      pieces.length = 0;
      this.borrowBlock = null;
      this.borrowFile = null;
    }
    if (this.fsync) this.writeBack.wrote(file, bytes);
  }

  /** Queues the writes of every cached page not yet in its file (copied out, they are clean at once). */
  private writeOut(): Promise<void> {
    // One at a time: each goes through the dirty pages.
    const run = (this.flushing ?? Promise.resolve()).then(() => this.writeDirty());
    const done = run.finally(() => {
      if (this.flushing === done) this.flushing = null;
    });
    this.flushing = done;
    return done;
  }

  /**
   * Flushes, fsyncs (unless `fsync: false`) and closes every file. Once it
   * succeeded, calling it again does nothing (`readQemuMigration` and the
   * decoders finish the store themselves); after `close()` it throws.
   */
  async finish(): Promise<void> {
    if (this.finished) return;
    if (this.closed) throw closedError();
    await this.flush();
    await this.writeBack.settled(); // a failed background write-back fails the finish
    for (const [block, end] of this.extent) {
      // Zero pages left as holes at the end: the file still reaches them.
      const handle = await this.handle(block);
      if ((await handle.stat()).size < end) await handle.truncate(end);
    }
    for (const f of this.files.values()) {
      const handle = await f.handle;
      if (this.fsync) await handle.sync();
    }
    await this.close();
    this.finished = true;
  }

  /** Closes every file without writing cached pages. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.borrowed.length = 0; // not written, as cached pages are not
    this.borrowFile = null;
    // A write-out under way stops at its next write (it sees `closed`) before the cache's memory goes.
    await this.flushing?.catch(() => undefined);
    this.dropCache();
    this.slab = new Uint8Array(0);
    getEngine()?.giveAll(this);
    await this.writes.quiet(); // no file closed under a write
    await this.writeBack.quiet(); // nor under a write-back
    const handles = [...this.files.values()].map((f) => f.handle.then((h) => h.close(), () => undefined));
    this.files.clear();
    await Promise.all(handles);
  }

  /**
   * True when a page of `size` bytes at `offset` goes through the cache. The
   * cache takes the size of the first page written while it is empty.
   */
  private cached(offset: number, size: number, writing = false): boolean {
    if (writing && this.used === 0 && size !== this.pageSize && size > 0 && size <= this.cacheSize && offset % size === 0) {
      const capacity = Math.min(Math.floor(this.cacheSize / size), this.neededSlots(size));
      this.slab = this.newSlab(capacity * size); // first: nothing changes if this throws
      this.pageSize = size;
      this.capacity = capacity;
      this.slotBlock = new Array<string | null>(this.capacity).fill(null);
      this.slotOffset = new Float64Array(this.capacity);
      this.streamed = new Int32Array(this.capacity);
      this.streamedHead = 0;
      this.streamedCount = 0;
      this.dirty = new Uint8Array(this.capacity);
      this.referenced = new Uint8Array(this.capacity);
    }
    return size === this.pageSize && offset % size === 0;
  }

  /**
   * Slots of `size` bytes the cache needs at most: the blocks declared so far,
   * at least {@link SMALL_CACHE} (blocks may be declared one at a time, or grow
   * later); without a declaration, no limit. A small image's decode then
   * allocates a small cache: 64 MiB of new memory made V8 collect (external
   * memory pressure), ~12 ms of a decode of a few pages.
   */
  private neededSlots(size: number): number {
    if (this.declared.size === 0) return Number.MAX_SAFE_INTEGER;
    let bytes = 0;
    for (const length of this.declared.values()) bytes += Math.ceil(length / size) * size;
    return Math.ceil(Math.max(bytes, SMALL_CACHE) / size);
  }

  /**
   * @internal Worker threads will write into the cache: it moves to the SIMD
   * kernel's shared memory (when that has room), where it stays. Memory the
   * kernel took is not given back to the system until the process ends, so a
   * store keeps a plain array until then.
   */
  shareMemory(): void {
    if (this.shared || this.closed) return;
    this.shared = true;
    if (this.slab.length === 0) return;
    const old = this.slab;
    this.slab = this.newSlab(old.length);
    // Only the slots handed out so far hold pages (the others were never touched): copying the
    // whole cache would fault in all of the new memory at once (64 MiB: ~16,000 faults).
    this.slab.set(old.subarray(0, this.used * this.pageSize));
  }

  /**
   * The cache's memory: in the SIMD kernel's shared memory when worker
   * threads write into it and it has room, else a plain array.
   */
  private newSlab(bytes: number): Uint8Array {
    const engine = getEngine();
    if (this.shared && engine !== null && engine.shared) {
      engine.giveAll(this); // a cache set up again (after close) gives the old one back
      const ptr = engine.take(this, bytes, 4096);
      if (ptr >= 0) return new Uint8Array(engine.bytes().buffer, ptr, bytes);
    }
    return new Uint8Array(bytes);
  }

  /** True when {@link FilePageStore.takeSlot} finds a slot without writing the cache out. */
  private hasRoom(): boolean {
    return this.used < this.capacity || this.dirtyCount * 2 <= this.capacity;
  }

  /**
   * A slot for a new page: a never-used one, else a clean one chosen by the
   * clock (recently used slots get a second chance), else -1 when the cache
   * should be written out first: when more than half of it waits to be
   * written, so that the hand always finds a clean slot within two turns.
   * Before a never-used slot, a page that was written out with its window and
   * not used since is replaced, once more than an eighth of the cache holds
   * such pages: a stream in file order keeps its last pages cached without
   * touching the whole cache's memory (fresh memory costs a page fault per 4
   * KiB, ~200 ms for 64 MiB on this project's VM).
   */
  private takeSlot(): number {
    if (this.used < this.capacity) {
      const recycled = this.recycle();
      return recycled >= 0 ? recycled : this.used++;
    }
    if (!this.hasRoom()) return -1;
    const n = this.capacity;
    for (let step = 0; step < 2 * n; step++) {
      const slot = this.hand;
      this.hand = slot + 1 === n ? 0 : slot + 1;
      if (this.dirty[slot] === 1) continue;
      if (this.referenced[slot] === 1) {
        this.referenced[slot] = 0;
        continue;
      }
      this.evict(slot);
      return slot;
    }
    return -1; // not reached: at least half the slots are clean
  }

  /**
   * The slot of the page (`block`, `offset`), marked used and to be written;
   * with `create`, a new one for a page not cached. -1 when the page is not
   * cached (without `create`), or the cache must be written out first.
   */
  private claim(block: string, offset: number, create: boolean): number {
    let slot = this.index.get(block)?.get(offset);
    if (slot === undefined) {
      if (!create) return -1;
      slot = this.takeSlot();
      if (slot < 0) return -1;
      this.map(slot, block, offset);
    } else {
      this.referenced[slot] = 1;
    }
    this.markDirty(slot);
    this.given(block).pages.add(offset / this.pageSize);
    return slot;
  }

  /** The oldest streamed page's slot (see `takeSlot`), evicted, or -1. */
  private recycle(): number {
    const ring = this.streamed;
    const keep = this.capacity >> 3;
    while (this.streamedCount > keep) {
      const slot = ring[this.streamedHead]!;
      this.dropOldestStreamed();
      // Still a clean page nobody used since (else it was used again, or is another page by now).
      if (this.dirty[slot] === 0 && this.referenced[slot] === 0 && this.slotBlock[slot] != null) {
        this.evict(slot);
        return slot;
      }
    }
    return -1;
  }

  /** Remembers `slot` as a page written out with its window (oldest first; the oldest forgotten when full). */
  private streamedOut(slot: number): void {
    const ring = this.streamed;
    if (this.streamedCount === ring.length) this.dropOldestStreamed();
    let at = this.streamedHead + this.streamedCount;
    if (at >= ring.length) at -= ring.length;
    ring[at] = slot;
    this.streamedCount++;
  }

  private dropOldestStreamed(): void {
    this.streamedHead = this.streamedHead + 1 === this.streamed.length ? 0 : this.streamedHead + 1;
    this.streamedCount--;
  }

  /** Puts the page (`block`, `offset`) in `slot`. */
  private map(slot: number, block: string, offset: number): void {
    let pages = this.index.get(block);
    if (pages === undefined) this.index.set(block, (pages = new Map()));
    pages.set(offset, slot);
    this.slotBlock[slot] = block;
    this.slotOffset[slot] = offset;
    // A new page is not marked used: a stream that cycles through more pages than
    // fit replaces these first and keeps the pages that were hit.
    this.referenced[slot] = 0;
  }

  private evict(slot: number): void {
    const block = this.slotBlock[slot];
    if (block == null) return;
    this.index.get(block)?.delete(this.slotOffset[slot]!);
    this.slotBlock[slot] = null;
    this.referenced[slot] = 0;
  }

  /** Drops cached pages of `block` overlapping [offset, offset + size) (they must be clean). */
  private forget(block: string, offset: number, size: number): void {
    const pages = this.index.get(block);
    if (pages === undefined) return;
    const end = offset + size;
    for (const [at, slot] of pages) {
      if (at < end && at + this.pageSize > offset) {
        this.evict(slot);
        this.hand = slot; // the clock takes it next
      }
    }
  }

  private dropCache(): void {
    this.index.clear();
    this.slotBlock.fill(null);
    this.dirty.fill(0);
    this.referenced.fill(0);
    this.dirtyCount = 0;
  }

  /** Queues the writes of the dirty pages sorted by block and offset, adjacent ones gathered. */
  private async writeDirty(): Promise<void> {
    if (this.dirtyCount === 0) return;
    const slots: number[] = [];
    for (let s = 0; s < this.used; s++) if (this.dirty[s] === 1) slots.push(s);
    const blockOf = this.slotBlock;
    const offsetOf = this.slotOffset;
    slots.sort((a, b) => {
      const ba = blockOf[a]!;
      const bb = blockOf[b]!;
      if (ba !== bb) return ba < bb ? -1 : 1;
      return offsetOf[a]! - offsetOf[b]!;
    });
    const size = this.pageSize;
    const writes = this.writes;
    const room = Math.max(1, Math.floor(writes.size / size));
    let i = 0;
    while (i < slots.length && !this.closed) {
      const first = slots[i]!;
      const block = blockOf[first]!;
      // Copied out and marked written before the write is queued: a page put again
      // meanwhile is dirty again (and written next time, after this write), never lost.
      if (size > writes.size) {
        writes.submit(block, offsetOf[first]!, this.slab.slice(first * size, first * size + size), null);
        this.markClean(first);
        i++;
        continue;
      }
      const staged = writes.tryTake() ?? (await writes.take());
      if (this.closed) break;
      // Waiting for a buffer, the caller was waiting too (calls do not overlap): the slots are as sorted.
      // A buffer takes the next pages of the block, adjacent or not: one queued job writes them
      // (a job per scattered page cost ~20 µs each in promises and turns).
      const gather = new Gather(staged);
      for (let k = 0; k < room && i < slots.length && blockOf[slots[i]!] === block; k++, i++) {
        const s = slots[i]!;
        gather.add(offsetOf[s]!, this.slab, s * size, size);
        this.markClean(s);
      }
      gather.submit(writes, block);
    }
  }

  private markDirty(slot: number): void {
    if (this.dirty[slot] === 0) {
      this.dirty[slot] = 1;
      this.dirtyCount++;
    }
  }

  private markClean(slot: number): void {
    if (this.dirty[slot] === 1) {
      this.dirty[slot] = 0;
      this.dirtyCount--;
    }
  }

  private handle(block: string): Promise<FileHandle> {
    let f = this.files.get(block);
    if (f === undefined) {
      if (this.closed) return Promise.reject(closedError());
      const path = this.pathOf(block);
      // 'r+' keeps an existing image; create it when missing.
      const opened = open(path, 'r+').catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        // The folder of `dir` may not exist yet (like `xbzrle extract`, make it); paths given by a
        // `path` function are the caller's to provide.
        if (this.dir !== undefined) await mkdir(this.dir, { recursive: true });
        return open(path, 'w+');
      });
      const file: OpenFile = { path, handle: opened, zerosFrom: -1, aliased: false, opened: null };
      for (const other of this.files.values()) {
        if (other.path === path) other.aliased = file.aliased = true;
      }
      file.handle = opened.then(async (h) => {
        const size = (await h.stat().catch(() => null))?.size;
        if (size !== undefined) file.zerosFrom = size; // before any write of the store: it opened the file first
        file.opened = h;
        return h;
      });
      f = file;
      this.files.set(block, f);
    }
    return f.handle;
  }

  /**
   * True when the page at `offset` (of the cache's page size) holds zeros in
   * the file: past the file's size when it was opened, and given no data since.
   */
  private knownZero(block: string, offset: number, length: number): boolean {
    if (length !== this.pageSize || offset % length !== 0) return false;
    const f = this.files.get(block);
    if (f?.aliased === true) return false;
    const given = this.data.get(block);
    const page = offset / length;
    if (given !== undefined && (offset + length > given.oddFrom || given.pages.has(page))) return false;
    // Past the file's size when it was opened, or left a hole before (before the open, too).
    return (f !== undefined && f.zerosFrom >= 0 && offset >= f.zerosFrom) || given?.holes.has(page) === true;
  }

  /** What the store gave `block`'s file (recorded from the first call, opened or not). */
  private given(block: string): GivenData {
    let g = this.data.get(block);
    if (g === undefined) this.data.set(block, (g = { pages: new PageBits(), oddFrom: Infinity, holes: new PageBits() }));
    return g;
  }

  /** Data of another size goes to the file at `offset`: nothing from there on is known to be zeros any more. */
  private dataAt(block: string, offset: number): void {
    const g = this.given(block);
    if (offset < g.oddFrom) g.oddFrom = offset;
  }

  /**
   * A page put or filled: pages coming in file order (holes allowed) gather in
   * a window as long as a staging buffer. When a page leaves the window (or it
   * fills up), the window's pages are written out at once, in one buffer,
   * if they (holes included) are at least half of it; else they wait for the
   * next write-out with the rest. A stream in file order (decode, patch,
   * extract) so writes as it goes; pages in random order still go out sorted
   * and gathered. Not with worker threads: their jobs on the window's pages
   * may still be queued.
   */
  private extendRun(block: string, offset: number): void | Promise<void> {
    const size = this.pageSize;
    const span = Math.floor(this.writes.size / size) * size;
    if (this.shared || span === 0) return undefined;
    let done: void | Promise<void> = undefined;
    if (block !== this.runBlock || offset <= this.runLast || offset >= this.runStart + span) {
      done = this.closeRun();
      this.runBlock = block;
      this.runStart = offset;
      this.runPages = 0;
    }
    this.runLast = offset;
    this.runPages++;
    if (this.runPages * size < span) return done;
    // Full: every page of the window came.
    return isPending(done) ? done.then(() => this.closeRun()) : this.closeRun();
  }

  /** Writes out the window's pages when they are at least half of it, and empties it. */
  private closeRun(): void | Promise<void> {
    const block = this.runBlock;
    const start = this.runStart;
    const last = this.runLast;
    const worth = this.runPages * this.pageSize * 2 >= this.writes.size;
    this.runBlock = null;
    this.runPages = 0;
    if (block === null || !worth) return undefined;
    const staged = this.writes.tryTake();
    if (staged !== null) return this.writeRun(staged, block, start, last);
    return this.writes.take().then((b) => this.writeRun(b, block, start, last));
  }

  /** Queues the writes of the dirty pages of `block` from `start` to `last` through `staged`, adjacent ones together. */
  private writeRun(staged: Uint8Array, block: string, start: number, last: number): void {
    const size = this.pageSize;
    const pages = this.index.get(block);
    const gather = new Gather(staged);
    for (let offset = start; offset <= last; offset += size) {
      const slot = pages?.get(offset);
      if (slot === undefined || this.dirty[slot] === 0) continue; // (a gap: the next page starts another piece)
      gather.add(offset, this.slab, slot * size, size);
      this.markClean(slot);
      this.streamedOut(slot);
    }
    gather.submit(this.writes, block);
  }

  /** Reads `into.length` bytes at `offset` (zeros past the end of the file); returns the bytes the file had. */
  private async readAt(block: string, offset: number, into: Uint8Array): Promise<number> {
    // The file must hold what was queued; after a failed write it does not (the failure is thrown).
    if (!this.writes.idle || this.writes.failed) await this.writes.drain();
    const handle = await this.handle(block);
    // Synchronous: these are the few pages a record needs now (at most READ_AHEAD bytes), which
    // the decoder waits for anyway; from the page cache a read takes microseconds, where a trip
    // through the thread pool (behind the writes queued there) takes a hundred.
    let done = 0;
    while (done < into.length) {
      const bytesRead = fs.readSync(handle.fd, into, done, into.length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done < into.length) into.fill(0, done);
    return done;
  }

  private async writeAt(block: string, offset: number, data: Uint8Array): Promise<void> {
    const handle = await this.handle(block);
    // Synchronous, as `patch` writes: a write into the page cache is a copy the calling thread
    // does in less time than it takes to hand it to the thread pool and be called back (measured
    // on 512 MiB decodes: 1.14–1.33 s against 1.43–1.46 s); the disk catches up in the
    // background (the write-back below), as it does behind `dd`.
    let done = 0;
    while (done < data.length) done += fs.writeSync(handle.fd, data, done, data.length - done, offset + done);
    if (this.fsync) this.writeBack.wrote(handle, done);
  }
}

function isPending(value: void | Promise<void>): value is Promise<void> {
  return value !== undefined;
}

function closedError(): Error {
  return new Error('FilePageStore is closed');
}
