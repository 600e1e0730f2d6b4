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
import { getScanner } from './scan.js';
import { ByteQueue, DeltaReader, RecordCursor, RecordKind } from './reader.js';
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
    const kernel = new PageKernel(ps, 1);
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
    // Page hashes in place (lib/delta/scan.ts) when the step buffers are in the kernel's memory:
    // OLD's step's hashes, then NEW's, then a flag byte a page.
    const sc = getScanner();
    const hashArea = sc !== null && sc.engine.addressOf(bufs[0]) >= 0 ? allocPages(Math.ceil((17 * stepPages) / ps), ps) : null;
    const hashAt = hashArea === null ? -1 : sc!.engine.addressOf(hashArea);
    const hashBytes = hashArea === null ? null : new Uint8Array(hashArea.buffer, hashArea.byteOffset, 17 * stepPages);
    const changed = new Uint8Array(stepPages);
    const oldHashes = new BigUint64Array(stepPages);
    const zh = zeroPageHash(this.hasher, ps);
    const oldDigest = new ImageDigest(this.hasher);
    const newDigest = new ImageDigest(this.hasher);
    if (file === undefined && io.old === undefined) throw new TypeError('DeltaApplyIO needs old or oldFile');
    const oldQ = file === undefined ? new ByteQueue(io.old!) : null;
    const oldWant = (s: number): number => Math.max(0, Math.min(stepBytes, total - s, h.oldSize - s));
    let prefetch: Promise<number> | null = file !== undefined && sync === undefined && total > 0 ? fillOld(bufs[0], 0, oldWant(0)) : null;
    const cursor = new RecordCursor(h);
    const st = this.stats;
    let have = false; // the cursor holds a record not yet applied
    let ended = false; // EOS seen
    const nextRecord = async (): Promise<void> => {
      for (;;) {
        if (cursor.read()) {
          if (cursor.kind === RecordKind.MemSize) continue;
          if (cursor.kind === RecordKind.Eos) {
            ended = true;
            have = false;
            return;
          }
          have = true;
          return;
        }
        const at = this.reader.position;
        const frame = await this.reader.nextFrame();
        if (frame === null) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt at byte ${at} (records end without EOS)`, { offset: at });
        cursor.reset(frame, this.reader.frameAt, this.reader.frames - 1);
        this.frame = frame;
      }
    };
    try {
      await nextRecord();
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
        const bufAt = hashBytes === null ? -1 : sc!.engine.addressOf(oldBuf);
        if (bufAt >= 0) {
          sc!.hashPages(bufAt, pages, ps, hashAt, hashAt + 16 * stepPages, zh);
          zero.set(hashBytes!.subarray(16 * stepPages, 16 * stepPages + pages));
          oldDigest.addHashes(hashBytes!.subarray(0, 8 * oldPagesHere));
        } else {
          for (let i = 0; i < pages; i++) {
            const isZ = kernel.isZero(oldBuf, i * ps);
            zero[i] = isZ ? 1 : 0;
            const hh = isZ ? zh : this.hasher.h64At(oldBuf, i * ps, ps);
            oldHashes[i] = hh;
            if (i < oldPagesHere) oldDigest.add(hh);
          }
        }
        if (s >= h.newSize) continue;
        const m = Math.min(n, h.newSize - s);
        changed.fill(0);
        const end = s + m;
        while (have && cursor.offset < end) {
          const x = cursor.offset;
          const i = (x - s) / ps;
          const at = i * ps;
          changed[i] = 1;
          switch (cursor.kind) {
            case RecordKind.Zero:
            case RecordKind.Page:
            case RecordKind.Xbzrle:
              applyLiteral(cursor.kind, this.frame, cursor.at, cursor.length, newBuf, at, ps, st, this.reader, x);
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
                else if (io.readNew !== undefined) {
                  await io.readNew(y, scratch);
                  newBuf.set(scratch, at);
                } else throw new XbzrleError('ERR_DELTA_FORMAT', `the delta refers to NEW's page at ${y}, which cannot be read back`);
              }
              break;
            }
          }
          await nextRecord();
        }
        const newPages = m / ps;
        if (bufAt >= 0) {
          // NEW's hashes: OLD's, then those of the changed pages hashed in place over them.
          const hb = hashBytes!;
          hb.copyWithin(8 * stepPages, 0, 8 * newPages);
          for (let i = 0; i < newPages; i++) {
            if (changed[i] === 0) {
              st.unchanged++;
              continue;
            }
            sc!.hashPages(bufAt + i * ps, 1, ps, hashAt + 8 * (stepPages + i), hashAt + 16 * stepPages + i, zh);
            zero[i] = hb[16 * stepPages + i]!;
          }
          newDigest.addHashes(hb.subarray(8 * stepPages, 8 * (stepPages + newPages)));
        } else {
          for (let i = 0; i < newPages; i++) {
            if (changed[i] === 0) {
              st.unchanged++;
              newDigest.add(oldHashes[i]!);
              continue;
            }
            const isZ = kernel.isZero(newBuf, i * ps);
            zero[i] = isZ ? 1 : 0;
            newDigest.add(isZ ? zh : this.hasher.h64At(newBuf, i * ps, ps));
          }
        }
        yield { offset: s, data: newBuf.subarray(0, m), zero: zero.subarray(0, newPages) };
      }
      if (have) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt: a record for page ${cursor.offset} past NEW's end`);
      if (!ended) await nextRecord();
      if (have || !ended) throw new XbzrleError('ERR_DELTA_CORRUPT', 'delta is corrupt: records after the last page');
      // Records end with EOS; the frame must end there, and then the trailer.
      if (cursor.read()) throw new XbzrleError('ERR_DELTA_CORRUPT', 'delta is corrupt: a record after EOS');
      const last = await this.reader.nextFrame();
      if (last !== null) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${this.reader.frames - 1} at byte ${this.reader.frameAt} (a frame after EOS)`, { offset: this.reader.frameAt });
      if (oldQ !== null && !(await oldQ.atEnd())) {
        let extra = 0;
        for (let c = await oldQ.read(1 << 20); c.length > 0; c = await oldQ.read(1 << 20)) extra += c.length;
        throw wrongBaseSize(oldName, h.oldSize + extra, h.oldSize);
      }
      if (file !== undefined && (await file.read(scratch, 1, h.oldSize)) > 0) {
        throw new XbzrleError('ERR_DELTA_WRONG_BASE', `${oldName}: not the base this delta was made from (it grew past ${formatSize(h.oldSize)} while being read)`);
      }
      const t = this.reader.trailer!;
      const od = oldDigest.digest();
      if (this.o.verify !== false && od !== t.oldDigest) {
        throw new XbzrleError('ERR_DELTA_WRONG_BASE', `${oldName}: not the base this delta was made from (same size, different content)`);
      }
      const nd = newDigest.digest();
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
      kernel.dispose();
      for (const b of [...bufs, scratch]) freePages(b);
      if (hashArea !== null) freePages(hashArea);
    }
  }

  private frame: Uint8Array = new Uint8Array(0);
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
