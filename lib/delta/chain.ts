/**
 * A chain of deltas applied in one pass: BASE is read once, in order; each
 * step of it goes through the first delta's records, then the second's, …,
 * and the last result is handed out step by step. Every delta's checks are
 * made as if it were applied alone (its OLD's size and digest, computed on
 * the way; its frames, records and trailer; its NEW's digest).
 *
 * References (REF records) to a page that is not in the step being rebuilt
 * are resolved by {@link ChainApplier}'s page resolver, a pure function of
 * BASE and the deltas: page `y` of the image after delta `j` is found from
 * delta `j`'s record for `y` (none: the page of the image before it; ZERO,
 * PAGE; XBZRLE: applied to the page of the image before it; REF: the page it
 * names), down to BASE, which is a file. The deltas are read at random for
 * this (files; a piped delta is spooled to a temporary file first), through
 * an index of their frames (file offset and last page, 24 bytes a frame)
 * that grows as frames are read, in order or ahead of the pass. Memory is
 * bounded: the step buffers, one frame per delta in order and one read at
 * random (with a table of its records), whatever the image size. Pure code:
 * the I/O is injected.
 */
import { applyChecked, checkDelta } from '../codec/decode.js';
import { PageKernel } from '../codec/kernel.js';
import { allocPages, freePages } from '../codec/pages.js';
import { XbzrleError } from '../errors.js';
import { formatSize } from '../format/sizes.js';
import { applyLiteral, wrongBaseSize, type NewStep } from './apply.js';
import type { FrameCompressor, FrameWorkers } from './codec.js';
import { emptyStats, setTotals, type DeltaStats } from './encoder.js';
import { CODEC_ZSTD, corruptFrame, decodeFrameHeader, FRAME_DATA, FRAME_END, FRAME_HEADER_SIZE, REF_OLD, type DeltaHeader } from './format.js';
import { ImageDigest, zeroPageHash, type Hasher } from './hash.js';
import { ByteQueue, checkCompressed, decompressFrame, DeltaReader, RecordCursor, RecordFeed, RecordKind } from './reader.js';
import { fillInto } from '../codec/copy.js';

/** Random reads of a file-like thing: up to `length` bytes at `position` into `into` from its start; resolves to the count read (0 at its end). */
export interface RandomRead {
  read(into: Uint8Array, length: number, position: number): Promise<number>;
}

/** One delta of a chain: read in order (`chunks`) and at random (`random`: the same bytes). */
export interface ChainDelta {
  chunks: AsyncIterable<Uint8Array>;
  random: RandomRead;
}

/** The I/O of {@link ChainApplier.steps}. */
export interface ChainIO {
  /** BASE (a file). */
  base: RandomRead;
  /** Reads the final image's (already yielded) page at byte `offset` into `into`. */
  readOut(offset: number, into: Uint8Array): Promise<void>;
}

/** Options of {@link ChainApplier.open}. */
export interface ChainApplierOptions {
  /** Refuse a delta of another page size. */
  pageSize?: number;
  /** Check each delta's OLD digest (default true). */
  verify?: boolean;
  /** Pages per step. Default 256. */
  stepPages?: number;
  /** BASE's name in messages. */
  baseName?: string;
}

/** Marks `err` as coming from delta `i` of the chain (unless an inner call did). */
export function tagDelta<E>(err: E, i: number): E {
  if (err !== null && typeof err === 'object' && !Object.prototype.hasOwnProperty.call(err, 'deltaIndex')) {
    Object.defineProperty(err, 'deltaIndex', { value: i, enumerable: false, configurable: true });
  }
  return err;
}

async function readFull(src: RandomRead, into: Uint8Array, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const r = await src.read(done === 0 ? into : into.subarray(done), length - done, position + done);
    if (r === 0) break;
    done += r;
  }
  return done;
}

/** One delta of the chain: its pass in order, its digests, and its frames at random. */
class Stage {
  readonly h: DeltaHeader;
  readonly stats: DeltaStats;
  readonly oldDigest: ImageDigest;
  readonly newDigest: ImageDigest;
  /** The pass in order: its records across the frames (each frame indexed as it is read). */
  readonly feed: RecordFeed;
  // The frame index: file offset, end offset and last page offset (carried over from the frame before
  // when a frame has no page record) of every frame read so far, in order or ahead.
  private fAt: number[] = [];
  private fEnd: number[] = [];
  private fLast: number[] = [];
  private complete = false; // the index reached the trailer
  // 1 bit a page of NEW: the delta has a record for it (set as frames are indexed), so a lookup of a
  // page without one reads no frame.
  private readonly recBits: Uint8Array;
  // Frames read at random, with a table of their page records; the most recently used first out last.
  private readonly tables = new Map<number, FrameTable>();
  private t: FrameTable | null = null;
  private tableBytes = 0;
  private readonly scan: RecordCursor;
  private readonly hb = new Uint8Array(FRAME_HEADER_SIZE);
  private readEnd = 0; // where the frame last read at random ends

  constructor(
    readonly index: number,
    readonly reader: DeltaReader,
    private readonly random: RandomRead,
    private readonly hasher: Hasher,
    private readonly compressor: FrameCompressor | null,
    private readonly maxTableBytes: number,
  ) {
    this.h = reader.header!;
    this.stats = emptyStats('xbzrle', this.h.pageSize, this.h.oldSize, this.h.newSize);
    this.oldDigest = new ImageDigest(hasher);
    this.newDigest = new ImageDigest(hasher);
    this.feed = new RecordFeed(this.h, reader, (frame, at, end, num) => {
      if (num === this.fAt.length) this.addToIndex(frame, at, end, num);
    });
    this.scan = new RecordCursor(this.h);
    this.recBits = new Uint8Array(Math.ceil(this.h.newSize / this.h.pageSize / 8));
  }

  private addToIndex(frame: Uint8Array, at: number, end: number, num: number): void {
    // The frame's last page record (the records are checked again where they are used).
    const s = this.scan;
    s.resume(frame, at, num, num === 0 ? null : this.feed.cursor.blockName);
    let last = num === 0 ? -1 : this.fLast[num - 1]!;
    const bits = this.recBits;
    const ps = this.h.pageSize;
    while (s.read()) {
      if (s.kind === RecordKind.MemSize || s.kind === RecordKind.Eos) continue;
      last = s.offset;
      const q = last / ps;
      bits[q >>> 3] = bits[q >>> 3]! | (1 << (q & 7));
    }
    this.fAt.push(at);
    this.fEnd.push(end);
    this.fLast.push(last);
  }

  /** Reads frame `num` (at `at`) at random: every check of the pass. Null at the trailer. */
  private async readFrameAt(num: number, at: number): Promise<Uint8Array | null> {
    const hb = this.hb;
    const got = await readFull(this.random, hb, FRAME_HEADER_SIZE, at);
    if (got >= 1 && hb[0] === FRAME_END) return null;
    if (got < FRAME_HEADER_SIZE) throw new XbzrleError('ERR_DELTA_TRUNCATED', `delta is truncated at byte ${at + got} (inside frame ${num}'s header)`, { offset: at + got });
    if (hb[0] !== FRAME_DATA) throw corruptFrame(num, at, `unknown frame type 0x${hb[0]!.toString(16)}`);
    const fh = decodeFrameHeader(hb, num, at, this.h, this.hasher);
    this.readEnd = at + FRAME_HEADER_SIZE + fh.storedLength;
    const stored = new Uint8Array(fh.storedLength);
    const n = await readFull(this.random, stored, fh.storedLength, at + FRAME_HEADER_SIZE);
    if (n < fh.storedLength) throw new XbzrleError('ERR_DELTA_TRUNCATED', `delta is truncated at byte ${at + FRAME_HEADER_SIZE + n} (inside frame ${num})`, { offset: at + FRAME_HEADER_SIZE + n });
    if (this.hasher.h64(stored) !== fh.payloadHash) throw corruptFrame(num, at, 'payload checksum mismatch');
    if (fh.codec !== CODEC_ZSTD) return stored;
    checkCompressed(this.compressor, stored, fh, num, at);
    return decompressFrame(this.compressor, stored, fh, num, at);
  }

  /** Extends the index by one frame read ahead of the pass; false at the trailer. */
  private async indexAhead(): Promise<boolean> {
    const num = this.fAt.length;
    const at = num === 0 ? this.reader.position : this.fEnd[num - 1]!;
    const raw = await this.readFrameAt(num, at);
    if (raw === null) {
      this.complete = true;
      return false;
    }
    this.addToIndex(raw, at, this.readEnd, num);
    return true;
  }

  /**
   * This delta's record for the page at byte `y`: its row in the table of its
   * frame (then current for `kindOf`/`refOf`/`applyRow`/`copyRow`), or -1 when it has none.
   */
  async lookup(y: number): Promise<number> {
    while (!this.complete && (this.fLast.length === 0 || this.fLast[this.fLast.length - 1]! < y)) {
      if (!(await this.indexAhead())) break;
    }
    const q = y / this.h.pageSize;
    if ((this.recBits[q >>> 3]! & (1 << (q & 7))) === 0) return -1;
    // The first frame whose last page is at or past y.
    const lo = lowerBound(this.fLast, this.fLast.length, y);
    if (lo === this.fLast.length) return -1;
    let t = this.tables.get(lo);
    if (t === undefined) {
      t = await this.loadTable(lo);
      // The least recently used go while over the budget (the newest stays, whatever its size).
      for (const [num, old] of this.tables) {
        if (this.tableBytes + t.bytes <= this.maxTableBytes) break;
        this.tables.delete(num);
        this.tableBytes -= old.bytes;
      }
      this.tableBytes += t.bytes;
    } else this.tables.delete(lo);
    this.tables.set(lo, t); // most recently used last
    this.t = t;
    const a = lowerBound(t.off, t.n, y);
    return a < t.n && t.off[a] === y ? a : -1;
  }

  private async loadTable(num: number): Promise<FrameTable> {
    const raw = await this.readFrameAt(num, this.fAt[num]!);
    if (raw === null) throw corruptFrame(num, this.fAt[num]!, 'frame missing');
    const s = this.scan;
    const block = num === 0 ? null : this.feed.cursor.blockName;
    let n = 0;
    s.resume(raw, this.fAt[num]!, num, block);
    while (s.read()) if (s.kind !== RecordKind.MemSize && s.kind !== RecordKind.Eos) n++;
    const t: FrameTable = { num, raw, n, bytes: raw.length + n * 26, off: new Float64Array(n), kind: new Uint8Array(n), at: new Int32Array(n), len: new Int32Array(n), ref: new Float64Array(n) };
    s.resume(raw, this.fAt[num]!, num, block);
    let i = 0;
    while (s.read()) {
      if (s.kind === RecordKind.MemSize || s.kind === RecordKind.Eos) continue;
      t.off[i] = s.offset;
      t.at[i] = s.at;
      t.len[i] = s.length;
      if (s.kind === RecordKind.Ref) {
        t.kind[i] = s.refKind === REF_OLD ? KIND_REF_OLD : KIND_REF_NEW;
        t.ref[i] = s.refOffset;
      } else t.kind[i] = s.kind;
      i++;
    }
    return t;
  }

  kindOf(row: number): number {
    return this.t!.kind[row]!;
  }
  refOf(row: number): number {
    return this.t!.ref[row]!;
  }
  /** Applies the XBZRLE record of `row` to `page` (offset 0), checked first. */
  applyRow(row: number, page: Uint8Array, y: number): void {
    const t = this.t!;
    const at = t.at[row]!;
    const len = t.len[row]!;
    if (checkDelta(t.raw, at, len, this.h.pageSize) < 0) throw corruptFrame(t.num, this.fAt[t.num]!, `bad XBZRLE delta for page ${y}`);
    applyChecked(t.raw, at, len, page, 0);
  }
  copyRow(row: number, page: Uint8Array): void {
    const t = this.t!;
    const at = t.at[row]!;
    page.set(t.raw.subarray(at, at + this.h.pageSize), 0);
  }
}

/** A frame read at random and its page records, in order. */
interface FrameTable {
  num: number;
  raw: Uint8Array;
  n: number;
  /** Memory it holds. */
  bytes: number;
  off: Float64Array;
  kind: Uint8Array;
  at: Int32Array;
  len: Int32Array;
  ref: Float64Array;
}

/** Memory for frames read at random and their tables, over all the deltas of a chain (each delta keeps at least its last one). */
const TABLE_BYTES = 48 << 20;
/** Memory for frames read ahead (with workers), over all the deltas of a chain (each delta reads at least one ahead). */
const AHEAD_BYTES = 48 << 20;
const KIND_REF_OLD = 100;
const KIND_REF_NEW = 101;

/**
 * Applies a chain of deltas (each made against the result of the one
 * before) in one pass; see the file's comment. {@link ChainApplier.steps}
 * yields the last image in steps and, once finished, has checked every
 * delta: a consumer must not use its output before.
 */
export class ChainApplier {
  private constructor(
    private readonly stages: Stage[],
    private readonly baseSize: number,
    private readonly hasher: Hasher,
    private readonly o: ChainApplierOptions,
  ) {}

  /** The deltas' headers, in order. */
  get headers(): DeltaHeader[] {
    return this.stages.map((s) => s.h);
  }

  /**
   * Reads and checks every delta's header: page sizes (all the same, and
   * `pageSize` when given), each delta's OLD size against BASE's or the
   * previous delta's NEW size. Errors carry `deltaIndex`. With `workers`,
   * each delta's frames are decompressed on them, ahead of the pass.
   */
  static async open(
    baseSize: number,
    deltas: ChainDelta[],
    deps: { hasher: Hasher; compressor: FrameCompressor | null; workers?: FrameWorkers | null },
    o: ChainApplierOptions = {},
  ): Promise<ChainApplier> {
    const stages: Stage[] = [];
    let ps = o.pageSize;
    for (let i = 0; i < deltas.length; i++) {
      const d = deltas[i]!;
      try {
        // With workers, each delta's frames are read ahead in its pass (the budget shared by the deltas).
        const reader = new DeltaReader(new ByteQueue(d.chunks), deps.hasher, deps.compressor, { workers: deps.workers, aheadBytes: Math.floor(AHEAD_BYTES / deltas.length) });
        const h = await reader.readHeader();
        if (ps !== undefined && ps !== h.pageSize) throw new XbzrleError('ERR_DELTA_PAGE_SIZE', `the delta's page size is ${h.pageSize}, not ${ps}`);
        ps = h.pageSize;
        const prev = i === 0 ? baseSize : stages[i - 1]!.h.newSize;
        if (prev !== h.oldSize) throw wrongBaseSize(i === 0 ? (o.baseName ?? 'OLD') : `the result of delta ${i}`, prev, h.oldSize);
        stages.push(new Stage(i, reader, d.random, deps.hasher, deps.compressor, Math.floor(TABLE_BYTES / deltas.length)));
      } catch (err) {
        throw tagDelta(err, i);
      }
    }
    return new ChainApplier(stages, baseSize, deps.hasher, o);
  }

  /** NEW (the last delta's), step by step; returns each delta's counters. */
  async *steps(io: ChainIO): AsyncGenerator<NewStep, DeltaStats[], void> {
    const stages = this.stages;
    const k = stages.length;
    const ps = stages[0]!.h.pageSize;
    const stepPages = this.o.stepPages ?? 256;
    const stepBytes = stepPages * ps;
    const baseName = this.o.baseName ?? 'OLD';
    const baseSize = this.baseSize;
    const finalSize = stages[k - 1]!.h.newSize;
    let total = Math.ceil(baseSize / ps) * ps;
    for (const st of stages) total = Math.max(total, st.h.newSize);
    const bufs = [allocPages(stepPages, ps), allocPages(stepPages, ps), allocPages(stepPages, ps)] as const;
    const zeros = [new Uint8Array(stepPages), new Uint8Array(stepPages), new Uint8Array(stepPages)] as const;
    // OLD's copy of each page a delta replaced in this step (in-step references to OLD read it).
    const save = allocPages(stepPages, ps);
    const saved = new Uint8Array(stepPages);
    const scratch = allocPages(1, ps);
    const hashes = new BigUint64Array(stepPages);
    const kernel = new PageKernel(ps, 1);
    const zh = zeroPageHash(this.hasher, ps);
    const base = io.base;
    const baseWant = (s: number): number => Math.max(0, Math.min(stepBytes, total - s, baseSize - s));
    let prefetch: Promise<number> | null = total > 0 ? readFull(base, bufs[0], baseWant(0), 0) : null;
    prefetch?.catch(() => 0);
    const readBase = async (y: number, into: Uint8Array): Promise<void> => {
      const have = Math.max(0, Math.min(ps, baseSize - y));
      const got = have > 0 ? await readFull(base, into, have, y) : 0;
      fillInto(into, 0, got, ps);
    };
    // Page `y` of image `level` (0: BASE, j: after delta j), from BASE and the deltas alone.
    const pageOf = async (level: number, y: number, into: Uint8Array): Promise<void> => {
      for (;;) {
        if (level === 0) return readBase(y, into);
        const st = stages[level - 1]!;
        let row: number;
        try {
          row = await st.lookup(y);
        } catch (err) {
          throw tagDelta(err, st.index);
        }
        if (row < 0) {
          if (y >= st.h.oldSize) {
            fillInto(into, 0, 0, ps);
            return;
          }
          level--;
          continue;
        }
        switch (st.kindOf(row)) {
          case RecordKind.Zero:
            fillInto(into, 0, 0, ps);
            return;
          case RecordKind.Page:
            st.copyRow(row, into);
            return;
          case RecordKind.Xbzrle:
            if (y >= st.h.oldSize) fillInto(into, 0, 0, ps);
            else await pageOf(level - 1, y, into); // lower levels only: this stage's table stays
            try {
              st.applyRow(row, into, y);
            } catch (err) {
              throw tagDelta(err, st.index);
            }
            return;
          case KIND_REF_OLD:
            y = st.refOf(row);
            level--;
            continue;
          default:
            y = st.refOf(row); // an earlier page of the same image
            continue;
        }
      }
    };
    let cur = 0; // the stage being applied, for errors
    try {
      for (cur = 0; cur < k; cur++) await stages[cur]!.feed.next();
      cur = 0;
      for (let s = 0, b = 0; s < total; s += stepBytes, b = b === 2 ? 0 : b + 1) {
        const n = Math.min(stepBytes, total - s);
        const pages = n / ps;
        const buf = bufs[b]!;
        const zero = zeros[b]!;
        cur = 0;
        const want = baseWant(s);
        if (prefetch !== null) {
          const got = await prefetch;
          if (got < want) throw wrongBaseSize(baseName, s + got, baseSize);
          const next = s + stepBytes;
          prefetch = next < total ? readFull(base, bufs[b === 2 ? 0 : b + 1]!, baseWant(next), next) : null;
          prefetch?.catch(() => 0); // awaited on the next step, or in finally
        }
        if (want < n) fillInto(buf, 0, want, n);
        const basePages = Math.max(0, Math.min(pages, Math.ceil((baseSize - s) / ps)));
        for (let i = 0; i < basePages; i++) {
          const isZ = kernel.isZero(buf, i * ps);
          zero[i] = isZ ? 1 : 0;
          hashes[i] = isZ ? zh : this.hasher.h64At(buf, i * ps, ps);
        }
        for (let i = basePages; i < pages; i++) {
          zero[i] = 1;
          hashes[i] = zh;
        }
        for (cur = 0; cur < k; cur++) {
          const st = stages[cur]!;
          const h = st.h;
          const oldPages = Math.max(0, Math.min(pages, Math.ceil((h.oldSize - s) / ps)));
          for (let i = 0; i < oldPages; i++) st.oldDigest.add(hashes[i]!);
          const m = Math.max(0, Math.min(n, h.newSize - s));
          const newPages = m / ps;
          if (m > 0) {
            saved.fill(0, 0, newPages);
            const feed = st.feed;
            const c = feed.cursor;
            const stats = st.stats;
            const end = s + m;
            while (feed.have && c.offset < end) {
              const x = c.offset;
              const i = (x - s) / ps;
              const at = i * ps;
              if (saved[i] === 0) {
                save.set(buf.subarray(at, at + ps), at);
                saved[i] = 1;
              }
              switch (c.kind) {
                case RecordKind.Zero:
                case RecordKind.Page:
                case RecordKind.Xbzrle:
                  applyLiteral(c.kind, feed.frame, c.at, c.length, buf, at, ps, stats, st.reader, x);
                  break;
                case RecordKind.Ref: {
                  const y = c.refOffset;
                  if (c.refKind === REF_OLD) {
                    stats.refOld++;
                    if (y >= s && y < s + n) {
                      const j = (y - s) / ps;
                      if (j < newPages && saved[j] === 1) buf.set(save.subarray(y - s, y - s + ps), at);
                      else buf.copyWithin(at, y - s, y - s + ps);
                    } else {
                      await pageOf(cur, y, scratch);
                      buf.set(scratch, at);
                    }
                  } else {
                    stats.refNew++;
                    if (y >= s) buf.copyWithin(at, y - s, y - s + ps);
                    else {
                      if (cur === k - 1) await io.readOut(y, scratch);
                      else await pageOf(cur + 1, y, scratch);
                      buf.set(scratch, at);
                    }
                  }
                  break;
                }
              }
              await feed.next();
            }
            for (let i = 0; i < newPages; i++) {
              if (saved[i] === 1) {
                const isZ = kernel.isZero(buf, i * ps);
                zero[i] = isZ ? 1 : 0;
                hashes[i] = isZ ? zh : this.hasher.h64At(buf, i * ps, ps);
              } else stats.unchanged++;
              st.newDigest.add(hashes[i]!);
            }
          }
          // Past this image's end its pages are zero (for the next delta's OLD).
          for (let i = newPages; i < pages; i++) {
            if (zero[i] === 0) {
              fillInto(buf, 0, i * ps, i * ps + ps);
              zero[i] = 1;
            }
            hashes[i] = zh;
          }
        }
        if (s < finalSize) {
          const m = Math.min(n, finalSize - s);
          yield { offset: s, data: buf.subarray(0, m), zero: zero.subarray(0, m / ps) };
        }
      }
      cur = 0;
      if ((await readFull(base, scratch, 1, baseSize)) > 0) {
        throw new XbzrleError('ERR_DELTA_WRONG_BASE', `${baseName}: not the base this delta was made from (it grew past ${formatSize(baseSize)} while being read)`);
      }
      for (cur = 0; cur < k; cur++) await this.finish(stages[cur]!, cur === 0 ? baseName : `the result of delta ${cur}`);
      return stages.map((s) => s.stats);
    } catch (err) {
      throw tagDelta(err, cur < k ? cur : k - 1);
    } finally {
      if (prefetch !== null) await prefetch.catch(() => 0);
      kernel.dispose();
      for (const x of [...bufs, save, scratch]) freePages(x);
    }
  }

  /** A delta's checks once its pass is over: records, frames, trailer, digests. */
  private async finish(st: Stage, oldName: string): Promise<void> {
    await st.feed.end();
    const r = st.reader;
    const t = r.trailer!;
    const od = st.oldDigest.digest();
    if (this.o.verify !== false && od !== t.oldDigest) {
      throw new XbzrleError('ERR_DELTA_WRONG_BASE', `${oldName}: not the base this delta was made from (same size, different content)`);
    }
    const nd = st.newDigest.digest();
    if (nd !== t.newDigest) {
      throw new XbzrleError(
        'ERR_DELTA_CORRUPT',
        this.o.verify === false && od !== t.oldDigest ? `${oldName}: not the base this delta was made from: the result does not match the delta's checksum` : "the result does not match the delta's checksum",
      );
    }
    setTotals(st.stats, r.frames, r.rawBytes, r.position, od, nd);
  }
}

/** The first index below `n` whose value in the ascending `values` is at least `y` (`n` when none). */
function lowerBound(values: ArrayLike<number>, n: number, y: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! < y) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
