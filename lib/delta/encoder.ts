/**
 * The diff side: decides, page by page, how NEW's page is sent against OLD's
 * page at the same offset (nothing, ZERO, a reference, XBZRLE or PAGE) and
 * feeds a {@link DeltaWriter}. Pure code: I/O for dedup candidates outside
 * the current step is injected.
 */
import { PageKernel } from '../codec/kernel.js';
import { allocPages, freePages } from '../codec/pages.js';
import { argRangeError } from '../errors.js';
import type { FrameCompressor, FrameWorkers } from './codec.js';
import { DEFAULT_FRAME_SIZE, DELTA_VERSION, FLAG_COMPRESSED, FLAG_DEDUP, MAX_FRAME_SIZE, REF_NEW, REF_OLD } from './format.js';
import { ImageDigest, low32, PageIndex, zeroPageHash, type Hasher } from './hash.js';
import { getScanner, SCAN_CHANGED, SCAN_NEW_ZERO, scanOutBytes, type PageScanner } from './scan.js';
import { DeltaWriter } from './writer.js';

/** Options of {@link DeltaEncoder}. */
export interface DeltaEncoderOptions {
  /** Page size (1 KiB to 16 KiB, a power of two). Default 4096. */
  pageSize?: number;
  /** OLD's size in bytes. */
  oldSize: number;
  /** NEW's size in bytes (a positive multiple of the page size). */
  newSize: number;
  /** Block name of the records. Default `ram`. */
  block?: string;
  /** Compress frames with zstd. Default true. */
  compress?: boolean;
  /** zstd level: 1 to 22, or -7 to -1 for zstd's fast levels. Default 3. */
  level?: number;
  /** Send pages equal to another page of OLD, or to an earlier page of NEW, as references. Default true. */
  dedup?: boolean;
  /** Raw size at which a frame is closed. Default 1 MiB. */
  frameSize?: number;
  /**
   * Most pages of OLD (and, separately, of NEW) the dedup index holds
   * (16 bytes each). Default 2^21 (8 GiB of 4 KiB pages, 32 MiB each).
   */
  maxIndexPages?: number;
  /** @internal Most bytes of records the scan keeps for the second pass (default 4 MiB; tests make it small). */
  keepBytes?: number;
}

/** Page reads for dedup candidates outside the step being encoded. */
export interface DeltaEncoderIO {
  /** Reads OLD's page at byte `offset` into `into` (one page). Without it, OLD candidates are looked for in the current step only. */
  readOld?(offset: number, into: Uint8Array): Promise<void>;
  /** Reads NEW's page at byte `offset` (an earlier page) into `into`. Without it, NEW candidates are looked for in the current step only. */
  readNew?(offset: number, into: Uint8Array): Promise<void>;
}

/** Counters of a diff, a patch or a verify. */
export interface DeltaStats {
  /** `xbzrle` for this library's delta container, `qemu` for a plain RAM record stream. */
  format: 'xbzrle' | 'qemu';
  /** Page size of the images and records. */
  pageSize: number;
  /** OLD's size in bytes. */
  oldSize: number;
  /** NEW's size in bytes. */
  newSize: number;
  /** Pages of NEW equal to OLD's page at the same offset (no record). */
  unchanged: number;
  /** ZERO records. */
  zero: number;
  /** PAGE records. */
  page: number;
  /** XBZRLE records. */
  xbzrle: number;
  /** Reference records to a page of OLD. */
  refOld: number;
  /** Reference records to an earlier page of NEW. */
  refNew: number;
  /** Data frames (0 for the `qemu` format). */
  frames: number;
  /** Record bytes before compression. */
  rawBytes: number;
  /** Bytes of the delta. */
  deltaBytes: number;
  /** OLD's image digest (hex), when known. */
  oldDigest?: string;
  /** NEW's image digest (hex), when known. */
  newDigest?: string;
}

/** Fresh zeroed stats. */
export function emptyStats(format: 'xbzrle' | 'qemu', pageSize: number, oldSize: number, newSize: number): DeltaStats {
  return { format, pageSize, oldSize, newSize, unchanged: 0, zero: 0, page: 0, xbzrle: 0, refOld: 0, refNew: 0, frames: 0, rawBytes: 0, deltaBytes: 0 };
}

/** Deltas up to this length are sent as XBZRLE even when a reference exists. */
const SMALL_DELTA = 24;
/** Most bytes of records the scan keeps for the second pass (a length byte and at most SMALL_DELTA bytes a page). */
const KEEP_BYTES = 4 << 20;
const DEFAULT_INDEX_PAGES = 1 << 21;

export function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

/** @internal Sets a container delta's totals in `stats`: frames, bytes before and after compression, the two digests. */
export function setTotals(stats: DeltaStats, frames: number, rawBytes: number, deltaBytes: number, oldDigest: bigint, newDigest: bigint): void {
  stats.frames = frames;
  stats.rawBytes = rawBytes;
  stats.deltaBytes = deltaBytes;
  stats.oldDigest = hex64(oldDigest);
  stats.newDigest = hex64(newDigest);
}

/**
 * Encodes a delta from OLD and NEW pages. Optionally first hand it all of
 * OLD with {@link DeltaEncoder.indexOld} (OLD's digest goes in the header and
 * every page of OLD is a dedup candidate); then {@link DeltaEncoder.push}
 * OLD and NEW in the same steps, in order; then {@link DeltaEncoder.end}.
 * Without the first pass (OLD is a pipe), OLD's digest goes in the trailer
 * and the remaining OLD pages past NEW's end go through `indexOld` before `end`.
 *
 * @example
 * ```ts
 * const enc = await DeltaEncoder.create({ oldSize, newSize }, {}, (c) => chunks.push(c))
 * enc.indexOld(oldBytes, 0)
 * await enc.push(oldBytes, newBytes, 0)
 * const stats = enc.end()
 * ```
 */
export class DeltaEncoder {
  /** Counters so far. */
  readonly stats: DeltaStats;
  private readonly ps: number;
  private readonly o: Required<Omit<DeltaEncoderOptions, 'block'>> & { block: string };
  private readonly hasher: Hasher;
  private readonly compressor: FrameCompressor | null;
  private readonly workers: FrameWorkers | null;
  private readonly io: DeltaEncoderIO;
  private readonly onChunk: (chunk: Uint8Array) => void;
  private writer: DeltaWriter | null = null;
  private readonly kernel: PageKernel;
  private readonly scratch: Uint8Array;
  private readonly zeroHash: bigint;
  /** The zero-page hash's low and high 32 bits. */
  private readonly zeroLow: number;
  private readonly zeroHigh: number;
  private readonly oldDigest: ImageDigest;
  private readonly newDigest: ImageDigest;
  private readonly oldHashes: BigUint64Array;
  private readonly oldIndex: PageIndex | null;
  /** Made when the delta starts: after a scan it only needs room for the changed pages. */
  private newIndex: PageIndex | null = null;
  private prepassed = false;
  private scanned = false;
  private pushedTo = 0;
  private nChanged = 0;
  private readonly changed: Uint8Array;
  /**
   * Changed pages whose record the scan already knows (1 bit a page of NEW): a
   * ZERO, or an XBZRLE delta of at most {@link SMALL_DELTA} bytes (neither
   * depends on the dedup index). Their records are kept in order in `kept`:
   * a length byte (0 for ZERO) and the delta, up to `keepBytes` (default {@link KEEP_BYTES}) in all.
   */
  private readonly known: Uint8Array;
  private kept: Uint8Array = new Uint8Array(0);
  private keptEnd = 0;
  private keptAt = 0;
  /** The WebAssembly page scan, or null (then {@link DeltaEncoder.scan} goes page by page). */
  private readonly scanner: PageScanner | null;
  /** The scan's output in the kernel's memory (hashes and flags of a step), made on first use. */
  private scanOut: Uint8Array | null = null;
  /** Bytes of the buffers given to {@link DeltaEncoder.push} / {@link DeltaEncoder.encodeChanged} that hold pages of the images (dedup candidates compared in memory). */
  private runFrom = 0;
  private runTo = 0;
  /** OLD's pages from `indexFrom` to `indexTo` (exclusive) are in oldHashes, not yet in the dedup index. */
  private indexFrom = 0;
  private indexTo = 0;
  /** A comparison in the kernel overwrote the delta of the page being decided. */
  private clobbered = false;

  private constructor(o: DeltaEncoder['o'], hasher: Hasher, compressor: FrameCompressor | null, workers: FrameWorkers | null, io: DeltaEncoderIO, onChunk: (chunk: Uint8Array) => void) {
    this.o = o;
    this.ps = o.pageSize;
    this.hasher = hasher;
    this.compressor = compressor;
    this.workers = compressor === null ? null : workers;
    this.io = io;
    this.onChunk = onChunk;
    this.stats = emptyStats('xbzrle', o.pageSize, o.oldSize, o.newSize);
    this.kernel = new PageKernel(o.pageSize, 1);
    this.scratch = allocPages(1, o.pageSize);
    this.zeroHash = zeroPageHash(hasher, o.pageSize);
    this.zeroLow = low32(this.zeroHash);
    this.zeroHigh = low32(this.zeroHash >> 32n);
    this.oldDigest = new ImageDigest(hasher);
    this.newDigest = new ImageDigest(hasher);
    const oldPages = Math.ceil(o.oldSize / o.pageSize);
    this.oldHashes = new BigUint64Array(Math.min(oldPages, o.maxIndexPages));
    this.oldIndex = o.dedup ? new PageIndex(Math.min(oldPages, o.maxIndexPages)) : null;
    this.changed = new Uint8Array(Math.ceil(o.newSize / o.pageSize / 8));
    this.known = new Uint8Array(this.changed.length);
    this.scanner = getScanner();
  }

  /**
   * A new encoder. `hasher` comes from {@link loadHasher}; `compressor` is
   * needed unless `compress` is false ({@link loadZstd} in Node). With
   * `workers`, frames are compressed on them: call {@link DeltaEncoder.drain}
   * now and then to write out those done (it bounds how many are in flight),
   * and end with {@link DeltaEncoder.finish}; the bytes are the same.
   */
  static create(
    options: DeltaEncoderOptions,
    io: DeltaEncoderIO,
    onChunk: (chunk: Uint8Array) => void,
    deps: { hasher: Hasher; compressor: FrameCompressor | null; workers?: FrameWorkers | null },
  ): DeltaEncoder {
    const ps = options.pageSize ?? 4096;
    if (!Number.isInteger(ps) || ps < 1024 || ps > 16384 || (ps & (ps - 1)) !== 0) throw argRangeError('pageSize', 'a power of two from 1024 to 16384', ps);
    if (!Number.isSafeInteger(options.oldSize) || options.oldSize < 0) throw argRangeError('oldSize', 'a non-negative integer', options.oldSize);
    if (!Number.isSafeInteger(options.newSize) || options.newSize <= 0 || options.newSize % ps !== 0) throw argRangeError('newSize', `a positive multiple of the page size ${ps}`, options.newSize);
    const level = options.level ?? 3;
    if (!Number.isInteger(level) || level < -7 || level > 22 || level === 0) throw argRangeError('level', 'an integer from -7 to 22 other than 0', level);
    const frameSize = options.frameSize ?? DEFAULT_FRAME_SIZE;
    if (!Number.isInteger(frameSize) || frameSize < 4096 || frameSize > MAX_FRAME_SIZE) throw argRangeError('frameSize', 'an integer from 4096 to 16 MiB', frameSize);
    const compress = options.compress ?? true;
    if (compress && deps.compressor === null) throw argRangeError('compress', 'false when no compressor is given', compress);
    const o = {
      pageSize: ps,
      oldSize: options.oldSize,
      newSize: options.newSize,
      block: options.block ?? 'ram',
      compress,
      level,
      dedup: options.dedup ?? true,
      frameSize,
      maxIndexPages: options.maxIndexPages ?? DEFAULT_INDEX_PAGES,
      keepBytes: options.keepBytes ?? KEEP_BYTES,
    };
    return new DeltaEncoder(o, deps.hasher, compress ? deps.compressor : null, deps.workers ?? null, io, onChunk);
  }

  /** Gives back the kernel memory (call once done, also after an error). */
  dispose(): void {
    this.kernel.dispose();
    freePages(this.scratch);
    if (this.scanOut !== null) freePages(this.scanOut);
    this.scanOut = null;
  }

  /** @internal XXH64 of an all-zero page of this page size. */
  get zeroPageHash(): bigint {
    return this.zeroHash;
  }

  /** Bytes of OLD hashed so far (the offset the next {@link DeltaEncoder.indexOld} call starts at). */
  get oldHashedBytes(): number {
    return this.oldDigest.pages * this.ps;
  }

  /** Hashes OLD pages starting at byte `offset` (the next page not yet hashed); `data`'s length a page multiple, or OLD's tail zero-padded by the caller. */
  indexOld(data: Uint8Array, offset: number): void {
    const ps = this.ps;
    if (this.writer === null) this.prepassed = true;
    let page = offset / ps;
    for (let at = 0; at < data.length; at += ps, page++) {
      if (page !== this.oldDigest.pages) throw new RangeError(`OLD pages out of order (page ${page}, expected ${this.oldDigest.pages})`);
      const h = this.hashOld(data, at, page);
      this.oldDigest.add(h);
    }
  }

  private hashOld(data: Uint8Array, at: number, page: number): bigint {
    this.flushIndex();
    const h = this.kernel.isZero(data, at) ? this.zeroHash : this.hasher.h64At(data, at, this.ps);
    if (page < this.oldHashes.length) this.oldHashes[page] = h;
    if (this.oldIndex !== null && h !== this.zeroHash) this.oldIndex.insert(h, page);
    return h;
  }

  private start(): DeltaWriter {
    this.flushIndex();
    const o = this.o;
    if (o.dedup) {
      // Only changed pages go into it: after a scan, at most changedCount of them (fresh memory
      // costs a page fault per 4 KiB touched).
      const max = Math.min(o.newSize / o.pageSize, o.maxIndexPages);
      this.newIndex = new PageIndex(max, this.scanned ? this.changedCount : max);
    }
    const w = new DeltaWriter(
      {
        header: {
          version: DELTA_VERSION,
          pageSize: o.pageSize,
          oldSize: o.oldSize,
          oldDigest: this.prepassed && this.oldDigest.pages * this.ps >= o.oldSize ? this.oldDigest.digest() : null,
          newSize: o.newSize,
          flags: (o.compress ? FLAG_COMPRESSED : 0) | (o.dedup ? FLAG_DEDUP : 0),
          level: o.compress ? o.level : 0,
          frameSize: o.frameSize,
        },
        hasher: this.hasher,
        compressor: this.compressor,
        workers: this.workers,
        block: o.block,
      },
      this.onChunk,
    );
    this.writer = w;
    return w;
  }

  /**
   * One pass (OLD from a pipe): encodes NEW's pages `newData` at byte
   * `offset` against OLD's `oldData` (same length, a page multiple; OLD
   * zero-padded past its end). Steps come in order from offset 0.
   */
  async push(oldData: Uint8Array, newData: Uint8Array, offset: number): Promise<void> {
    if (this.scanned) throw new RangeError('push after scan: use encodeChanged');
    const w = this.writer ?? this.start();
    const ps = this.ps;
    const k = this.kernel;
    if (offset !== this.pushedTo) throw new RangeError(`steps out of order (offset ${offset}, expected ${this.pushedTo})`);
    if (oldData.length !== newData.length || newData.length % ps !== 0 || offset + newData.length > this.o.newSize) throw new RangeError('OLD and NEW steps must be the same page multiple inside NEW');
    const oldPagesTotal = Math.ceil(this.o.oldSize / ps);
    this.runFrom = 0;
    this.runTo = oldData.length;
    for (let at = 0; at < newData.length; at += ps) {
      const page = (offset + at) / ps;
      let oldHash: bigint;
      if (!this.prepassed) {
        if (page < oldPagesTotal) {
          oldHash = this.hashOld(oldData, at, page);
          this.oldDigest.add(oldHash);
        } else oldHash = this.zeroHash;
      } else if (page < this.oldHashes.length) oldHash = this.oldHashes[page]!;
      else oldHash = -1n;
      const r = k.encode(oldData, at, newData, at);
      if (r === 0) {
        this.stats.unchanged++;
        this.newDigest.add(oldHash >= 0n ? oldHash : this.hashPage(newData, at));
        continue;
      }
      const h = this.hashPage(newData, at);
      this.newDigest.add(h);
      await this.decide(w, offset + at, oldData, at, newData, at, offset, r, h);
    }
    this.pushedTo = offset + newData.length;
  }

  /**
   * First of two passes (OLD and NEW are files): compares NEW's pages
   * `newData` at byte `offset` with OLD's `oldData` (same length; OLD
   * zero-padded past its end), hashing OLD's pages (its digest, the dedup
   * index) and NEW's (its digest), and notes the changed pages. Steps come in
   * order from 0; OLD's pages past NEW's end go through
   * {@link DeltaEncoder.indexOld}. Then {@link DeltaEncoder.changedPages}
   * lists what {@link DeltaEncoder.encodeChanged} must be given.
   */
  scan(oldData: Uint8Array, newData: Uint8Array, offset: number): void {
    if (this.writer !== null) throw new RangeError('scan after the delta was started');
    this.scanned = true;
    this.prepassed = true;
    const ps = this.ps;
    const k = this.kernel;
    if (offset !== this.pushedTo) throw new RangeError(`steps out of order (offset ${offset}, expected ${this.pushedTo})`);
    if (oldData.length !== newData.length || newData.length % ps !== 0 || offset + newData.length > this.o.newSize) throw new RangeError('OLD and NEW steps must be the same page multiple inside NEW');
    if (this.scanner !== null && this.scanStep(this.scanner, oldData, newData, offset)) return;
    const oldPagesTotal = Math.ceil(this.o.oldSize / ps);
    const changed = this.changed;
    for (let at = 0; at < newData.length; at += ps) {
      const page = (offset + at) / ps;
      let oldHash = this.zeroHash;
      if (page < oldPagesTotal) {
        oldHash = this.hashOld(oldData, at, page);
        this.oldDigest.add(oldHash);
      }
      if (k.encode(oldData, at, newData, at) === 0) {
        this.stats.unchanged++;
        this.newDigest.add(oldHash);
        continue;
      }
      changed[page >>> 3] = changed[page >>> 3]! | (1 << (page & 7));
      this.changedCount++;
      this.newDigest.add(this.hashPage(newData, at));
    }
    this.pushedTo = offset + newData.length;
  }

  /**
   * {@link DeltaEncoder.scan} of a step in one WebAssembly call, when both
   * steps are in the kernel's memory (else false, nothing done): the same
   * hashes, digests, index entries and changed pages as page by page.
   */
  private scanStep(sc: PageScanner, oldData: Uint8Array, newData: Uint8Array, offset: number): boolean {
    const engine = sc.engine;
    const oa = engine.addressOf(oldData);
    const na = engine.addressOf(newData);
    if (oa < 0 || na < 0) return false;
    const ps = this.ps;
    const count = newData.length / ps;
    if (count === 0) return true;
    const need = scanOutBytes(count);
    if (this.scanOut === null || this.scanOut.length < need) {
      if (this.scanOut !== null) freePages(this.scanOut);
      this.scanOut = null;
      const out = allocPages(Math.ceil(need / ps), ps);
      if (engine.addressOf(out) < 0) return false;
      this.scanOut = out;
    }
    const out = this.scanOut;
    const base = engine.addressOf(out);
    const nChanged = sc.scan(oa, na, count, ps, base, base + 8 * count, base + 16 * count, this.zeroHash);
    this.takeScan(out, count, offset, nChanged);
    if (nChanged > 0) this.keepKnown(out, count, offset, oldData, newData);
    return true;
  }

  /**
   * The records of the step's changed pages that need no dedup lookup (ZERO,
   * or an XBZRLE delta of at most {@link SMALL_DELTA} bytes), worked out now
   * while the pages are at hand, so that the second pass does not read them
   * back. The same records {@link DeltaEncoder.encodeChanged} would write.
   */
  private keepKnown(out: Uint8Array, count: number, offset: number, oldData: Uint8Array, newData: Uint8Array): void {
    const ps = this.ps;
    const flags = new Uint8Array(out.buffer, out.byteOffset + 16 * count, count);
    const first = offset / ps;
    const k = this.kernel;
    for (let i = 0; i < count; i++) {
      const f = flags[i]!;
      if ((f & SCAN_CHANGED) === 0) continue;
      let len = 0;
      if ((f & SCAN_NEW_ZERO) === 0) {
        len = k.encode(oldData, i * ps, newData, i * ps);
        if (len <= 0 || len > SMALL_DELTA) continue;
      }
      if (this.keptEnd + 1 + len > this.kept.length) {
        const cap = this.o.keepBytes;
        if (this.kept.length >= cap) return; // full: the rest are read back
        const grown = new Uint8Array(Math.min(cap, Math.max(64 << 10, 2 * this.kept.length)));
        grown.set(this.kept.subarray(0, this.keptEnd));
        this.kept = grown;
        if (this.keptEnd + 1 + len > grown.length) return;
      }
      this.kept[this.keptEnd] = len;
      if (len > 0) this.kept.set(k.delta.subarray(k.deltaOff, k.deltaOff + len), this.keptEnd + 1);
      this.keptEnd += 1 + len;
      const page = first + i;
      this.known[page >>> 3] = this.known[page >>> 3]! | (1 << (page & 7));
    }
  }

  /**
   * After the scan: false when the record of changed page `page` is known
   * already (see {@link DeltaEncoder.encodeChanged}: its buffers are not
   * read), true when the second pass must give its bytes.
   */
  needsPages(page: number): boolean {
    return (this.known[page >>> 3]! & (1 << (page & 7))) === 0;
  }

  /**
   * @internal The first pass's results for the `count` pages at byte
   * `offset`, as {@link PageScanner.scan} wrote them at `out` (OLD's hashes,
   * NEW's hashes, the flags; {@link scanOutBytes}), possibly on another thread:
   * what {@link DeltaEncoder.scan} does with them. Steps in order from 0, as
   * for `scan`.
   */
  takeScan(out: Uint8Array, count: number, offset: number, nChanged: number): void {
    if (this.writer !== null) throw new RangeError('scan after the delta was started');
    const ps = this.ps;
    if (offset !== this.pushedTo) throw new RangeError(`steps out of order (offset ${offset}, expected ${this.pushedTo})`);
    if (offset + count * ps > this.o.newSize) throw new RangeError('OLD and NEW steps must be the same page multiple inside NEW');
    this.scanned = true;
    this.prepassed = true;
    const first = offset / ps;
    const oldCount = Math.max(0, Math.min(count, Math.ceil(this.o.oldSize / ps) - first));
    // A plain view: subarrays of kernel buffers are kernel buffers, slower to make.
    const bytes = new Uint8Array(out.buffer, out.byteOffset, scanOutBytes(count));
    if (oldCount > 0) {
      this.oldDigest.addHashes(bytes.subarray(0, 8 * oldCount));
      const keep = Math.min(oldCount, this.oldHashes.length - first);
      if (keep > 0) this.oldHashes.set(new BigUint64Array(out.buffer, out.byteOffset, keep), first);
      const index = this.oldIndex;
      if (index !== null) {
        if (keep === oldCount && first === this.indexTo) {
          // In oldHashes: indexed later, all at once ({@link DeltaEncoder.flushIndex}).
          this.indexTo = first + oldCount;
        } else {
          this.flushIndex();
          this.insertOld(new Uint32Array(out.buffer, out.byteOffset, 2 * oldCount), first, oldCount);
          this.indexFrom = this.indexTo = first + oldCount;
        }
      }
    }
    this.newDigest.addHashes(bytes.subarray(8 * count, 16 * count));
    this.stats.unchanged += count - nChanged;
    this.changedCount += nChanged;
    if (nChanged > 0) {
      const flags = bytes.subarray(16 * count, 17 * count);
      const changed = this.changed;
      for (let i = 0; i < count; i++) {
        if ((flags[i]! & SCAN_CHANGED) === 0) continue;
        const page = first + i;
        changed[page >>> 3] = changed[page >>> 3]! | (1 << (page & 7));
      }
    }
    this.pushedTo = offset + count * ps;
  }

  /** Inserts OLD's pages `first` to `first + count - 1` into the dedup index, their hashes given as 32-bit halves (low first) in `words` from 0. */
  private insertOld(words: Uint32Array, first: number, count: number): void {
    const index = this.oldIndex!;
    const zl = this.zeroLow;
    const zh = this.zeroHigh;
    for (let i = 0, j = 0; i < count; i++, j += 2) {
      const lo = words[j]!;
      if (lo !== zl || words[j + 1] !== zh) index.insertKey(lo, first + i);
    }
  }

  /**
   * Indexes the pages {@link DeltaEncoder.takeScan} left to later (their
   * hashes are in oldHashes), in page order before any other. Building the
   * index at once keeps its table in the cache; inserting page by page
   * while the images stream through cost a cache miss per page.
   */
  private flushIndex(): void {
    if (this.indexTo === this.indexFrom) return;
    const h = this.oldHashes;
    this.insertOld(new Uint32Array(h.buffer, h.byteOffset + 8 * this.indexFrom, 2 * (this.indexTo - this.indexFrom)), this.indexFrom, this.indexTo - this.indexFrom);
    this.indexFrom = this.indexTo;
  }

  /** True when {@link DeltaEncoder.scan} found page `page` changed. */
  isChanged(page: number): boolean {
    return (this.changed[page >>> 3]! & (1 << (page & 7))) !== 0;
  }

  /** After {@link DeltaEncoder.scan}: the changed pages' numbers, in order. */
  *changedPages(): Generator<number> {
    const c = this.changed;
    const pages = this.o.newSize / this.ps;
    for (let b = 0; b < c.length; b++) {
      const v = c[b]!;
      if (v === 0) continue;
      for (let i = 0; i < 8; i++) if ((v & (1 << i)) !== 0 && b * 8 + i < pages) yield b * 8 + i;
    }
  }

  /** Changed pages found by {@link DeltaEncoder.scan}. */
  get changedCount(): number {
    return this.nChanged;
  }

  /** Sets the changed-page count (kept by {@link DeltaEncoder.scan}). */
  private set changedCount(n: number) {
    this.nChanged = n;
  }

  /**
   * Second pass: encodes changed page `page` (in ascending order) from OLD's
   * page at `oldData[oldAt]` (zeros past OLD's end) and NEW's at
   * `newData[newAt]`. Runs of pages may be passed as one buffer each, with
   * `runOffset` the byte offset of the buffers' first byte: dedup candidates
   * inside the run, bytes `runFrom` to `runTo` of the buffers (default: all of
   * them), are compared in memory; the buffers' other bytes are not looked at.
   * When {@link DeltaEncoder.needsPages} says no, the scan worked the
   * record out already and the buffers are not read at all.
   */
  async encodeChanged(page: number, oldData: Uint8Array, oldAt: number, newData: Uint8Array, newAt: number, runOffset = page * this.ps - newAt, runFrom = 0, runTo = newData.length): Promise<void> {
    if (!this.scanned || this.pushedTo !== this.o.newSize) throw new RangeError('encodeChanged needs a complete scan first');
    if (oldAt !== newAt) throw new RangeError('OLD and NEW run buffers must be laid out alike');
    const w = this.writer ?? this.start();
    const ps = this.ps;
    if (!this.needsPages(page)) {
      // Worked out by the scan (keepKnown), in page order.
      const len = this.kept[this.keptAt]!;
      if (len === 0) {
        w.zero(page * ps);
        this.stats.zero++;
      } else {
        w.xbzrle(page * ps, this.kept, this.keptAt + 1, len);
        this.stats.xbzrle++;
      }
      this.keptAt += 1 + len;
      return;
    }
    const r = this.kernel.encode(oldData, oldAt, newData, newAt);
    const h = this.hashPage(newData, newAt);
    this.runFrom = runFrom;
    this.runTo = Math.min(runTo, oldData.length);
    await this.decide(w, page * ps, oldData, oldAt, newData, newAt, runOffset, r, h);
  }

  /** The record for a changed page at byte `x` (`r`: its XBZRLE result against OLD's page, `h`: its hash). */
  private async decide(w: DeltaWriter, x: number, oldData: Uint8Array, oldAt: number, newData: Uint8Array, at: number, stepOffset: number, r: number, h: bigint): Promise<void> {
    const st = this.stats;
    const k = this.kernel;
    if (h === this.zeroHash && k.isZero(newData, at)) {
      w.zero(x);
      st.zero++;
      return;
    }
    if (r > 0 && r <= SMALL_DELTA) {
      w.xbzrle(x, k.delta, k.deltaOff, r);
      st.xbzrle++;
      return;
    }
    this.clobbered = false;
    if (this.oldIndex !== null) {
      const y = await this.findOld(h, newData, at, oldData, stepOffset);
      if (y >= 0) {
        w.ref(x, REF_OLD, y * this.ps);
        st.refOld++;
        return;
      }
      const z = await this.findNew(h, newData, at, stepOffset);
      if (z >= 0) {
        w.ref(x, REF_NEW, z * this.ps);
        st.refNew++;
        return;
      }
      this.newIndex!.insert(h, x / this.ps);
    }
    // The same result as `r`; encoded again only when a comparison in the kernel overwrote its delta.
    const r2 = this.clobbered ? k.encode(oldData, oldAt, newData, at) : r;
    if (r2 > 0) {
      w.xbzrle(x, k.delta, k.deltaOff, r2);
      st.xbzrle++;
    } else {
      const engine = this.scanner?.engine;
      const addr = engine === undefined ? -1 : engine.addressOf(newData);
      // From the whole-memory view: a subarray of it is a plain view, cheaper than one of a kernel buffer.
      if (addr >= 0) w.page(x, engine!.bytes(), addr + at);
      else w.page(x, newData, at);
      st.page++;
    }
  }

  /** The hash of the page at `data[at]`: the zero-page hash for an all-zero page (not hashed). */
  private hashPage(data: Uint8Array, at: number): bigint {
    if (this.kernel.isZero(data, at)) return this.zeroHash;
    const sc = this.scanner;
    const addr = sc === null ? -1 : sc.engine.addressOf(data);
    return addr >= 0 ? sc!.xxh64(addr + at, this.ps) : this.hasher.h64At(data, at, this.ps);
  }

  /** True when the pages at `a[aAt]` and `b[bAt]` are equal (in place when both are in the kernel's memory, else with the kernel's encoder, whose delta is then overwritten). */
  private same(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number): boolean {
    const sc = this.scanner;
    if (sc !== null) {
      const pa = sc.engine.addressOf(a);
      const pb = pa < 0 ? -1 : sc.engine.addressOf(b);
      if (pb >= 0) return sc.equal(pa + aAt, pb + bAt, this.ps) !== 0;
    }
    this.clobbered = true;
    return this.kernel.encode(a, aAt, b, bAt) === 0;
  }

  private async findOld(h: bigint, newData: Uint8Array, at: number, oldData: Uint8Array, stepOffset: number): Promise<number> {
    const y = this.oldIndex!.find(h);
    if (y < 0) return -1;
    if (y < this.oldHashes.length && this.oldHashes[y] !== h) return -1;
    const ps = this.ps;
    const yAt = y * ps - stepOffset;
    if (yAt >= this.runFrom && yAt < this.runTo) return this.same(oldData, yAt, newData, at) ? y : -1;
    if (this.io.readOld === undefined) return -1;
    await this.io.readOld(y * ps, this.scratch);
    return this.same(this.scratch, 0, newData, at) ? y : -1;
  }

  private async findNew(h: bigint, newData: Uint8Array, at: number, stepOffset: number): Promise<number> {
    const z = this.newIndex!.find(h);
    if (z < 0) return -1;
    const ps = this.ps;
    const zAt = z * ps - stepOffset;
    if (zAt >= this.runFrom && zAt < at) return this.same(newData, zAt, newData, at) ? z : -1;
    if (this.io.readNew === undefined) return -1;
    await this.io.readNew(z * ps, this.scratch);
    return this.same(this.scratch, 0, newData, at) ? z : -1;
  }

  /**
   * Writes out the frames compressed on the workers so far, in order, waiting
   * until at most `limit` are still in flight (default: one per thread).
   * Does nothing without workers.
   */
  async drain(limit = this.workers === null ? 0 : this.workers.threads): Promise<void> {
    if (this.writer !== null) await this.writer.drain(limit);
  }

  /** Ends the delta (all of NEW pushed, and all of OLD hashed) and returns the counters. Without workers only (else {@link DeltaEncoder.finish}). */
  end(): DeltaStats {
    const [w, od, nd] = this.ending();
    w.finish(od, nd);
    return this.totals(w, od, nd);
  }

  /** {@link DeltaEncoder.end}, with or without workers: the last frames are written out first. */
  async finish(): Promise<DeltaStats> {
    const [w, od, nd] = this.ending();
    await w.finishAsync(od, nd);
    return this.totals(w, od, nd);
  }

  private ending(): [DeltaWriter, bigint, bigint] {
    const w = this.writer ?? this.start();
    if (this.pushedTo !== this.o.newSize) throw new RangeError(`NEW was pushed up to ${this.pushedTo} of ${this.o.newSize} bytes`);
    const oldPages = Math.ceil(this.o.oldSize / this.ps);
    if (this.oldDigest.pages !== oldPages) throw new RangeError(`OLD was hashed up to page ${this.oldDigest.pages} of ${oldPages}`);
    return [w, this.oldDigest.digest(), this.newDigest.digest()];
  }

  private totals(w: DeltaWriter, od: bigint, nd: bigint): DeltaStats {
    const st = this.stats;
    setTotals(st, w.frames, w.rawBytes, w.bytesWritten, od, nd);
    return st;
  }
}
