/**
 * The patch side: rebuilds NEW step by step from OLD (read once, in order)
 * and a delta (read once, in order), checking everything on the way: every
 * frame, every record, OLD's size and digest, NEW's digest. Pure code: the
 * I/O is injected.
 */
import { checkDelta, applyChecked } from '../codec/decode.js';
import { PageKernel } from '../codec/kernel.js';
import { allocPages, freePages } from '../codec/pages.js';
import { XbzrleError } from '../errors.js';
import { formatSize } from '../format/sizes.js';
import type { FrameCompressor, FrameWorkers } from './codec.js';
import { REF_OLD, type DeltaHeader } from './format.js';
import { ImageDigest, zeroPageHash, type Hasher } from './hash.js';
import { emptyStats, setTotals, type DeltaStats } from './encoder.js';
import { getScanner, type PageScanner } from './scan.js';
import { ByteQueue, DeltaReader, RecordFeed, RecordKind } from './reader.js';
import { fillInto } from '../codec/copy.js';

/** Where the applier reads OLD, and earlier NEW pages. */
export interface DeltaApplyIO {
  /** OLD, in order from its first byte (any chunking), when there is no `oldFile`. */
  old?: AsyncIterable<Uint8Array>;
  /** OLD as a file: read in order one step ahead of the applier (straight into kernel memory), and at random for references. */
  oldFile?: {
    /** Reads up to `length` bytes of OLD from byte `position` into `into`; resolves to the bytes read (0 at OLD's end). */
    read(into: Uint8Array, length: number, position: number): Promise<number>;
    /**
     * The same, synchronously (a file in the page cache: a copy, cheaper than a
     * promise-based read and its thread hop); used instead of `read` when given.
     */
    readSync?(into: Uint8Array, length: number, position: number): number;
  };
  /** Reads OLD's page at byte `offset` into `into`; needed for references to OLD pages outside the current step. */
  readOld?(offset: number, into: Uint8Array): Promise<void>;
  /** Reads NEW's (already yielded) page at byte `offset` into `into`; needed for references to earlier NEW pages outside the current step. */
  readNew?(offset: number, into: Uint8Array): Promise<void>;
}

/**
 * A step of NEW handed out by {@link DeltaApplier.steps}. Two buffers take
 * turns, so a step stays valid while the next one is computed: until the
 * generator is resumed a second time.
 */
export interface NewStep {
  /** Byte offset in NEW. */
  offset: number;
  /** The bytes (a page multiple). */
  data: Uint8Array;
  /** Per page: 1 when the page is all zero (a hole can stay a hole). */
  zero: Uint8Array;
}

/** Options of {@link DeltaApplier.open}. */
export interface DeltaApplierOptions {
  /** Refuse (`ERR_DELTA_PAGE_SIZE`) a delta of another page size. */
  pageSize?: number;
  /** Check OLD's digest (default true). With false, only its size is checked. */
  verify?: boolean;
  /** Pages per step. Default 256. */
  stepPages?: number;
  /** Name of OLD in messages. Default `OLD`. */
  oldName?: string;
}

/** @internal What an error says about a base. */
export function wrongBaseSize(name: string, size: number, expected: number): XbzrleError {
  return new XbzrleError('ERR_DELTA_WRONG_BASE', `${name}: not the base this delta was made from (size ${formatSize(size)}, expected ${formatSize(expected)})`);
}

/**
 * Applies one delta in one pass. {@link DeltaApplier.open} reads and checks
 * the header; {@link DeltaApplier.steps} yields NEW in steps and, once the
 * last step was taken, has checked the trailer, OLD's digest (unless
 * `verify: false`) and NEW's digest — a consumer must not use its output
 * until the generator finished without an error.
 */
export class DeltaApplier {
  /** The delta's header, read and checked by {@link DeltaApplier.open}. */
  readonly header: DeltaHeader;
  /** Counts of what was applied; complete (frames, sizes, digests) once {@link DeltaApplier.steps} finished. */
  readonly stats: DeltaStats;
  private readonly reader: DeltaReader;
  private readonly hasher: Hasher;
  private readonly o: DeltaApplierOptions;

  private constructor(header: DeltaHeader, reader: DeltaReader, hasher: Hasher, o: DeltaApplierOptions) {
    this.header = header;
    this.reader = reader;
    this.hasher = hasher;
    this.o = o;
    this.stats = emptyStats('xbzrle', header.pageSize, header.oldSize, header.newSize);
  }

  /** Reads the header of the delta in `q` (checks magic, version, header checksum, page size). With `workers`, frames are decompressed on them, ahead of their use. */
  static async open(q: ByteQueue, deps: { hasher: Hasher; compressor: FrameCompressor | null; workers?: FrameWorkers | null }, o: DeltaApplierOptions = {}): Promise<DeltaApplier> {
    const reader = new DeltaReader(q, deps.hasher, deps.compressor, { workers: deps.workers });
    const header = await reader.readHeader();
    if (o.pageSize !== undefined && o.pageSize !== header.pageSize) {
      throw new XbzrleError('ERR_DELTA_PAGE_SIZE', `the delta's page size is ${header.pageSize}, not ${o.pageSize}`);
    }
    return new DeltaApplier(header, reader, deps.hasher, o);
  }

  /** Delta bytes read so far. */
  get position(): number {
    return this.reader.position;
  }

  /** NEW, step by step (see the class). */
  async *steps(io: DeltaApplyIO): AsyncGenerator<NewStep, DeltaStats, void> {
    // (Checked before any memory is taken: a caller that catches the error leaks nothing.)
    if (io.oldFile === undefined && io.old === undefined) throw new TypeError('DeltaApplyIO needs old or oldFile');
    const oldQ = io.oldFile === undefined ? new ByteQueue(io.old!) : null;
    const h = this.header;
    const ps = h.pageSize;
    const stepPages = this.o.stepPages ?? 256;
    const stepBytes = stepPages * ps;
    const oldName = this.o.oldName ?? 'OLD';
    const oldPadded = Math.ceil(h.oldSize / ps) * ps;
    const total = Math.max(h.newSize, oldPadded);
    // Three buffers take turns: the step being rebuilt (OLD's bytes, patched in place), the
    // next step's OLD being read ahead, and the previous step the consumer may still be writing.
    const bufs = [allocPages(stepPages, ps), allocPages(stepPages, ps), allocPages(stepPages, ps)] as const;
    const zeros = [new Uint8Array(stepPages), new Uint8Array(stepPages), new Uint8Array(stepPages)] as const;
    const scratch = allocPages(1, ps);
    const file = io.oldFile;
    const readOld = io.readOld ?? (file === undefined ? undefined : async (off: number, into: Uint8Array): Promise<void> => {
      const have = Math.max(0, Math.min(ps, h.oldSize - off));
      let done = 0;
      while (done < have) {
        const part = done === 0 ? into : into.subarray(done);
        const r = file.readSync !== undefined ? file.readSync(part, have - done, off + done) : await file.read(part, have - done, off + done);
        if (r === 0) break;
        done += r;
      }
      into.fill(0, done, ps);
    });
    // OLD's step `s` into `buf`: how many bytes OLD had there (fewer than asked: OLD ended).
    const fillOld = async (buf: Uint8Array, s: number, want: number): Promise<number> => {
      let done = 0;
      while (done < want) {
        const r = await file!.read(done === 0 ? buf : buf.subarray(done), want - done, s + done);
        if (r === 0) break;
        done += r;
      }
      return done;
    };
    const sync = file?.readSync?.bind(file);
    const fillOldSync = (buf: Uint8Array, s: number, want: number): number => {
      let done = 0;
      while (done < want) {
        const r = sync!(done === 0 ? buf : buf.subarray(done), want - done, s + done);
        if (r === 0) break;
        done += r;
      }
      return done;
    };
    const hashes = new StepHashes(this.hasher, ps, stepPages, bufs[0]);
    const oldWant = (s: number): number => Math.max(0, Math.min(stepBytes, total - s, h.oldSize - s));
    let prefetch: Promise<number> | null = file !== undefined && sync === undefined && total > 0 ? fillOld(bufs[0], 0, oldWant(0)) : null;
    const feed = new RecordFeed(h, this.reader);
    const st = this.stats;
    try {
      await feed.next();
      for (let s = 0, k = 0; s < total; s += stepBytes, k = k === 2 ? 0 : k + 1) {
        const n = Math.min(stepBytes, total - s);
        const newBuf = bufs[k]!;
        const oldBuf = newBuf;
        const zero = zeros[k]!;
        // OLD's bytes of this step, zeros past its end.
        const oldHave = oldWant(s);
        if (sync !== undefined) {
          const got = oldHave > 0 ? fillOldSync(oldBuf, s, oldHave) : 0;
          if (got < oldHave) throw wrongBaseSize(oldName, s + got, h.oldSize);
        } else if (prefetch !== null) {
          const got = await prefetch;
          if (got < oldHave) throw wrongBaseSize(oldName, s + got, h.oldSize);
          const next = s + stepBytes;
          prefetch = next < total ? fillOld(bufs[k === 2 ? 0 : k + 1]!, next, oldWant(next)) : null;
          prefetch?.catch(() => 0); // awaited on the next step, or in finally
        } else if (oldHave > 0) {
          const got = await oldQ!.read(oldHave);
          if (got.length < oldHave) throw wrongBaseSize(oldName, s + got.length, h.oldSize);
          oldBuf.set(got, 0);
        }
        if (oldHave < n) fillInto(oldBuf, 0, oldHave, n);
        const pages = n / ps;
        const oldPagesHere = Math.max(0, Math.min(pages, Math.ceil((h.oldSize - s) / ps)));
        const bufAt = hashes.old(oldBuf, pages, oldPagesHere, zero);
        if (s >= h.newSize) continue;
        const m = Math.min(n, h.newSize - s);
        await this.applyRecords(feed, s, n, s + m, newBuf, hashes.changed, scratch, readOld, io.readNew);
        hashes.new(newBuf, bufAt, m / ps, zero, st);
        yield { offset: s, data: newBuf.subarray(0, m), zero: zero.subarray(0, m / ps) };
      }
      await feed.end();
      if (oldQ !== null && !(await oldQ.atEnd())) {
        let extra = 0;
        for (let c = await oldQ.read(1 << 20); c.length > 0; c = await oldQ.read(1 << 20)) extra += c.length;
        throw wrongBaseSize(oldName, h.oldSize + extra, h.oldSize);
      }
      if (file !== undefined && (await file.read(scratch, 1, h.oldSize)) > 0) {
        throw new XbzrleError('ERR_DELTA_WRONG_BASE', `${oldName}: not the base this delta was made from (it grew past ${formatSize(h.oldSize)} while being read)`);
      }
      const t = this.reader.trailer!;
      const od = hashes.oldDigest.digest();
      if (this.o.verify !== false && od !== t.oldDigest) {
        throw new XbzrleError('ERR_DELTA_WRONG_BASE', `${oldName}: not the base this delta was made from (same size, different content)`);
      }
      const nd = hashes.newDigest.digest();
      if (nd !== t.newDigest) {
        throw new XbzrleError(
          'ERR_DELTA_CORRUPT',
          this.o.verify === false && od !== t.oldDigest
            ? `${oldName}: not the base this delta was made from: the result does not match the delta's checksum`
            : "the result does not match the delta's checksum",
        );
      }
      setTotals(st, this.reader.frames, this.reader.rawBytes, this.reader.position, od, nd);
      return st;
    } finally {
      if (prefetch !== null) await prefetch.catch(() => 0);
      hashes.dispose();
      for (const b of [...bufs, scratch]) freePages(b);
    }
  }

  /**
   * The records of one step (NEW's bytes `s` to `end`, the step `n` bytes in
   * `newBuf`, OLD's bytes there until a record replaces them) applied in
   * place; `changed` flags the pages a record wrote.
   */
  private async applyRecords(
    feed: RecordFeed,
    s: number,
    n: number,
    end: number,
    newBuf: Uint8Array,
    changed: Uint8Array,
    scratch: Uint8Array,
    readOld: ((offset: number, into: Uint8Array) => Promise<void>) | undefined,
    readNew: ((offset: number, into: Uint8Array) => Promise<void>) | undefined,
  ): Promise<void> {
    const ps = this.header.pageSize;
    const st = this.stats;
    const cursor = feed.cursor;
    changed.fill(0);
    while (feed.have && cursor.offset < end) {
      const x = cursor.offset;
      const i = (x - s) / ps;
      const at = i * ps;
      changed[i] = 1;
      switch (cursor.kind) {
        case RecordKind.Zero:
        case RecordKind.Page:
        case RecordKind.Xbzrle:
          applyLiteral(cursor.kind, feed.frame, cursor.at, cursor.length, newBuf, at, ps, st, this.reader, x);
          break;
        case RecordKind.Ref: {
          const y = cursor.refOffset;
          if (cursor.refKind === REF_OLD) {
            st.refOld++;
            // OLD's page is still in the step buffer unless a record already replaced it.
            if (y >= s && y < s + n && changed[(y - s) / ps] === 0) newBuf.copyWithin(at, y - s, y - s + ps);
            else if (readOld !== undefined) {
              await readOld(y, scratch);
              newBuf.set(scratch, at);
            } else throw new XbzrleError('ERR_DELTA_FORMAT', `the delta refers to OLD's page at ${y}: OLD must be a file`);
          } else {
            st.refNew++;
            if (y >= s) newBuf.copyWithin(at, y - s, y - s + ps);
            else if (readNew !== undefined) {
              await readNew(y, scratch);
              newBuf.set(scratch, at);
            } else throw new XbzrleError('ERR_DELTA_FORMAT', `the delta refers to NEW's page at ${y}, which cannot be read back`);
          }
          break;
        }
      }
      await feed.next();
    }
  }
}

/**
 * The page hashes of {@link DeltaApplier.steps}' steps: OLD's digest, NEW's
 * digest and each page's zero flag (a hole can stay a hole). In place in the
 * kernel's memory (lib/delta/scan.ts) when the step buffers are there: OLD's
 * step's hashes, then NEW's, then a flag byte a page; else page by page.
 */
class StepHashes {
  /** Per page of the step: 1 when a record wrote it. */
  readonly changed: Uint8Array;
  readonly oldDigest: ImageDigest;
  readonly newDigest: ImageDigest;
  private readonly oldHashes: BigUint64Array;
  private readonly sc: PageScanner | null;
  private readonly area: Uint8Array | null;
  private readonly areaAt: number;
  private readonly bytes: Uint8Array | null;
  private readonly zh: bigint;
  private readonly kernel: PageKernel;

  constructor(
    private readonly hasher: Hasher,
    private readonly ps: number,
    private readonly stepPages: number,
    stepBuffer: Uint8Array,
  ) {
    this.changed = new Uint8Array(stepPages);
    this.oldHashes = new BigUint64Array(stepPages);
    this.oldDigest = new ImageDigest(hasher);
    this.newDigest = new ImageDigest(hasher);
    this.zh = zeroPageHash(hasher, ps);
    const sc = getScanner();
    this.sc = sc;
    this.area = sc !== null && sc.engine.addressOf(stepBuffer) >= 0 ? allocPages(Math.ceil((17 * stepPages) / ps), ps) : null;
    this.areaAt = this.area === null ? -1 : sc!.engine.addressOf(this.area);
    this.bytes = this.area === null ? null : new Uint8Array(this.area.buffer, this.area.byteOffset, 17 * stepPages);
    try {
      this.kernel = new PageKernel(ps, 1);
    } catch (err) {
      if (this.area !== null) freePages(this.area);
      throw err;
    }
  }

  /**
   * OLD's step of `pages` pages in `buf` (`oldPagesHere` of them OLD's, the
   * rest past its end): hashed into OLD's digest, the zero flags set. Returns
   * where `buf` is for the scan (-1: page by page), for {@link StepHashes.new}.
   */
  old(buf: Uint8Array, pages: number, oldPagesHere: number, zero: Uint8Array): number {
    const { ps, stepPages, zh } = this;
    const bufAt = this.bytes === null ? -1 : this.sc!.engine.addressOf(buf);
    if (bufAt >= 0) {
      this.sc!.hashPages(bufAt, pages, ps, this.areaAt, this.areaAt + 16 * stepPages, zh);
      zero.set(this.bytes!.subarray(16 * stepPages, 16 * stepPages + pages));
      this.oldDigest.addHashes(this.bytes!.subarray(0, 8 * oldPagesHere));
      return bufAt;
    }
    for (let i = 0; i < pages; i++) {
      const isZ = this.kernel.isZero(buf, i * ps);
      zero[i] = isZ ? 1 : 0;
      const hh = isZ ? zh : this.hasher.h64At(buf, i * ps, ps);
      this.oldHashes[i] = hh;
      if (i < oldPagesHere) this.oldDigest.add(hh);
    }
    return -1;
  }

  /**
   * NEW's first `newPages` pages of the step, patched in `buf` (at `bufAt`,
   * from {@link StepHashes.old}): NEW's hashes are OLD's, and those of the
   * changed pages hashed again; into NEW's digest, the zero flags updated,
   * the unchanged pages counted.
   */
  new(buf: Uint8Array, bufAt: number, newPages: number, zero: Uint8Array, st: DeltaStats): void {
    const { ps, stepPages, zh, changed } = this;
    if (bufAt >= 0) {
      const hb = this.bytes!;
      hb.copyWithin(8 * stepPages, 0, 8 * newPages);
      for (let i = 0; i < newPages; i++) {
        if (changed[i] === 0) {
          st.unchanged++;
          continue;
        }
        this.sc!.hashPages(bufAt + i * ps, 1, ps, this.areaAt + 8 * (stepPages + i), this.areaAt + 16 * stepPages + i, zh);
        zero[i] = hb[16 * stepPages + i]!;
      }
      this.newDigest.addHashes(hb.subarray(8 * stepPages, 8 * (stepPages + newPages)));
      return;
    }
    for (let i = 0; i < newPages; i++) {
      if (changed[i] === 0) {
        st.unchanged++;
        this.newDigest.add(this.oldHashes[i]!);
        continue;
      }
      const isZ = this.kernel.isZero(buf, i * ps);
      zero[i] = isZ ? 1 : 0;
      this.newDigest.add(isZ ? zh : this.hasher.h64At(buf, i * ps, ps));
    }
  }

  dispose(): void {
    this.kernel.dispose();
    if (this.area !== null) freePages(this.area);
  }
}

/**
 * @internal Applies a ZERO, PAGE or XBZRLE record (its payload at
 * `frame[at…]`, `length` bytes for a delta) to the page at `buf[bufAt]`, and
 * counts it; a bad delta is `ERR_DELTA_CORRUPT` at its frame. Shared by the
 * single-delta applier and the chain.
 */
export function applyLiteral(
  kind: RecordKind,
  frame: Uint8Array,
  at: number,
  length: number,
  buf: Uint8Array,
  bufAt: number,
  ps: number,
  stats: DeltaStats,
  reader: DeltaReader,
  page: number,
): void {
  if (kind === RecordKind.Zero) {
    fillInto(buf, 0, bufAt, bufAt + ps);
    stats.zero++;
  } else if (kind === RecordKind.Page) {
    buf.set(frame.subarray(at, at + ps), bufAt);
    stats.page++;
  } else {
    if (checkDelta(frame, at, length, ps) < 0) {
      throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${reader.frames - 1} at byte ${reader.frameAt} (bad XBZRLE delta for page ${page})`, { offset: reader.frameAt });
    }
    applyChecked(frame, at, length, buf, bufAt);
    stats.xbzrle++;
  }
}
