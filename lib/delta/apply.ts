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
import { formatSize } from './size.js';
import type { FrameCompressor } from './codec.js';
import { REF_OLD, type DeltaHeader } from './format.js';
import { ImageDigest, zeroPageHash, type Hasher } from './hash.js';
import { emptyStats, hex64, type DeltaStats } from './encoder.js';
import { ByteQueue, DeltaReader, RecordCursor, RecordKind } from './reader.js';

/** Where the applier reads OLD, and earlier NEW pages. */
export interface DeltaApplyIO {
  /** OLD, in order from its first byte (any chunking). */
  old: AsyncIterable<Uint8Array>;
  /** Reads OLD's page at byte `offset` into `into`; needed for references to OLD pages outside the current step. */
  readOld?(offset: number, into: Uint8Array): Promise<void>;
  /** Reads NEW's (already yielded) page at byte `offset` into `into`; needed for references to earlier NEW pages outside the current step. */
  readNew?(offset: number, into: Uint8Array): Promise<void>;
}

/** A step of NEW handed out by {@link DeltaApplier.steps}; valid until the next one is asked for. */
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
  readonly header: DeltaHeader;
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

  /** Reads the header of the delta in `q` (checks magic, version, header checksum, page size). */
  static async open(q: ByteQueue, deps: { hasher: Hasher; compressor: FrameCompressor | null }, o: DeltaApplierOptions = {}): Promise<DeltaApplier> {
    const reader = new DeltaReader(q, deps.hasher, deps.compressor);
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
    const oldBuf = allocPages(stepPages, ps);
    const newBuf = allocPages(stepPages, ps);
    const scratch = allocPages(1, ps);
    const kernel = new PageKernel(ps, 1);
    const zero = new Uint8Array(stepPages);
    const changed = new Uint8Array(stepPages);
    const oldHashes = new BigUint64Array(stepPages);
    const zh = zeroPageHash(this.hasher, ps);
    const oldDigest = new ImageDigest(this.hasher);
    const newDigest = new ImageDigest(this.hasher);
    const oldQ = new ByteQueue(io.old);
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
      for (let s = 0; s < total; s += stepBytes) {
        const n = Math.min(stepBytes, total - s);
        // OLD's bytes of this step, zeros past its end.
        const oldHave = Math.max(0, Math.min(n, h.oldSize - s));
        if (oldHave > 0) {
          const got = await oldQ.read(oldHave);
          if (got.length < oldHave) throw wrongBaseSize(oldName, s + got.length, h.oldSize);
          oldBuf.set(got, 0);
        }
        if (oldHave < n) oldBuf.fill(0, oldHave, n);
        const pages = n / ps;
        const oldPagesHere = Math.max(0, Math.min(pages, Math.ceil((h.oldSize - s) / ps)));
        for (let i = 0; i < pages; i++) {
          const isZ = kernel.isZero(oldBuf, i * ps);
          zero[i] = isZ ? 1 : 0;
          const hh = isZ ? zh : this.hasher.h64(oldBuf.subarray(i * ps, (i + 1) * ps));
          oldHashes[i] = hh;
          if (i < oldPagesHere) oldDigest.add(hh);
        }
        if (s >= h.newSize) continue;
        const m = Math.min(n, h.newSize - s);
        newBuf.set(oldBuf.subarray(0, m), 0);
        changed.fill(0);
        const end = s + m;
        while (have && cursor.offset < end) {
          const x = cursor.offset;
          const i = (x - s) / ps;
          const at = i * ps;
          changed[i] = 1;
          switch (cursor.kind) {
            case RecordKind.Zero:
              newBuf.fill(0, at, at + ps);
              st.zero++;
              break;
            case RecordKind.Page:
              newBuf.set(this.frame.subarray(cursor.at, cursor.at + ps), at);
              st.page++;
              break;
            case RecordKind.Xbzrle: {
              const r = checkDelta(this.frame, cursor.at, cursor.length, ps);
              if (r < 0) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${this.reader.frames - 1} at byte ${this.reader.frameAt} (bad XBZRLE delta for page ${x})`, { offset: this.reader.frameAt });
              applyChecked(this.frame, cursor.at, cursor.length, newBuf, at);
              st.xbzrle++;
              break;
            }
            case RecordKind.Ref: {
              const y = cursor.refOffset;
              if (cursor.refKind === REF_OLD) {
                st.refOld++;
                if (y >= s && y < s + n) newBuf.set(oldBuf.subarray(y - s, y - s + ps), at);
                else if (io.readOld !== undefined) {
                  await io.readOld(y, scratch);
                  newBuf.set(scratch, at);
                } else throw new XbzrleError('ERR_DELTA_FORMAT', `the delta refers to OLD's page at ${y}: OLD must be a file`);
              } else {
                st.refNew++;
                if (y >= s) newBuf.set(newBuf.subarray(y - s, y - s + ps), at);
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
        for (let i = 0; i < newPages; i++) {
          if (changed[i] === 0) {
            st.unchanged++;
            newDigest.add(oldHashes[i]!);
            continue;
          }
          const isZ = kernel.isZero(newBuf, i * ps);
          zero[i] = isZ ? 1 : 0;
          newDigest.add(isZ ? zh : this.hasher.h64(newBuf.subarray(i * ps, (i + 1) * ps)));
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
      if (!(await oldQ.atEnd())) {
        let extra = 0;
        while ((await oldQ.read(1 << 20)).length > 0) extra++;
        throw wrongBaseSize(oldName, h.oldSize + extra, h.oldSize);
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
      st.frames = this.reader.frames;
      st.rawBytes = this.reader.rawBytes;
      st.deltaBytes = this.reader.position;
      st.oldDigest = hex64(od);
      st.newDigest = hex64(nd);
      return st;
    } finally {
      kernel.dispose();
      freePages(oldBuf);
      freePages(newBuf);
      freePages(scratch);
    }
  }

  private frame: Uint8Array = new Uint8Array(0);
}
