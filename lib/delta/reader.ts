/**
 * Reads the delta container (docs/delta-format.md) from any async source of
 * byte chunks, split anywhere: checks the header, every frame (header
 * checksum, payload checksum, sequence, lengths) and the trailer, and hands
 * back each frame's records. Pure code: no Node module.
 */
import { XbzrleError } from '../errors.js';
import { decodeBlockName, readU16, readU64 } from '../format/bytes.js';
import { ENCODING_FLAG_XBZRLE, RAM_SAVE_FLAG } from '../format/flags.js';
import type { FrameCompressor, FrameWorkers } from './codec.js';
import {
  CODEC_ZSTD,
  checkZstdFrame,
  corruptFrame,
  decodeFrameHeader,
  decodeHeader,
  decodeTrailer,
  FRAME_DATA,
  FRAME_END,
  FRAME_HEADER_SIZE,
  HEADER_SIZE,
  isDeltaMagic,
  REF_FLAG,
  REF_NEW,
  REF_OLD,
  TRAILER_SIZE,
  type DeltaHeader,
  type DeltaTrailer,
  type FrameHeader,
} from './format.js';
import type { Hasher } from './hash.js';

/** Exact-length reads over an async iterator of chunks. */
export class ByteQueue {
  /** Bytes consumed so far. */
  position = 0;
  private readonly it: AsyncIterator<Uint8Array>;
  private cur: Uint8Array = new Uint8Array(0);
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>, first?: Uint8Array) {
    this.it = source[Symbol.asyncIterator]();
    if (first !== undefined) this.cur = first;
  }

  /** `n` bytes, or fewer when the source ends first. */
  async read(n: number): Promise<Uint8Array> {
    if (this.cur.length >= n) {
      const out = this.cur.subarray(0, n);
      this.cur = this.cur.subarray(n);
      this.position += n;
      return out;
    }
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      if (this.cur.length === 0) {
        if (this.ended) break;
        const r = await this.it.next();
        if (r.done === true) {
          this.ended = true;
          break;
        }
        this.cur = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value as ArrayBuffer);
        continue;
      }
      const take = Math.min(n - have, this.cur.length);
      out.set(this.cur.subarray(0, take), have);
      this.cur = this.cur.subarray(take);
      have += take;
    }
    this.position += have;
    return have === n ? out : out.subarray(0, have);
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    while (this.cur.length === 0) {
      if (this.ended) return true;
      const r = await this.it.next();
      if (r.done === true) {
        this.ended = true;
        return true;
      }
      this.cur = r.value;
    }
    return false;
  }

  /** Stops the source early. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function truncated(at: number, what: string): XbzrleError {
  return new XbzrleError('ERR_DELTA_TRUNCATED', `delta is truncated at byte ${at} (inside ${what})`, { offset: at });
}

/** A frame (or the trailer, or the error reading it) read ahead, its records decompressing on a worker. */
interface Ahead {
  /** File offset where it starts. */
  at: number;
  /** File offset after it (where the reader's position is once it is handed out). */
  end: number;
  /** The frame's records (null: the trailer); rejects with the error the one-thread pass throws at this frame. */
  result: Promise<Uint8Array | null>;
  /** Stored and raw bytes it holds (the read-ahead budget). */
  bytes: number;
}

/** Options of {@link DeltaReader}. */
export interface DeltaReaderOptions {
  /** Decompress frames on these workers, reading ahead of the caller. Default none. */
  workers?: FrameWorkers | null;
  /** With workers: most frames read ahead. Default 2 per thread. */
  aheadFrames?: number;
  /** With workers: most bytes (stored and decompressed) read ahead; always at least one frame. Default 48 MiB. */
  aheadBytes?: number;
}

/**
 * One pass over a delta: {@link DeltaReader.readHeader}, then
 * {@link DeltaReader.nextFrame} until it returns null (the trailer was read
 * and checked; `trailer` is then set). With workers, frames are read and
 * checked ahead of the caller and decompressed on the workers; each is
 * handed out in order, and an error reading one (corrupt, truncated) is
 * thrown when the caller asks for that frame, as without workers.
 */
export class DeltaReader {
  /** The file header, once {@link DeltaReader.readHeader} read it (null before). */
  header: DeltaHeader | null = null;
  /** The trailer, once {@link DeltaReader.nextFrame} read and checked it (null before). */
  trailer: DeltaTrailer | null = null;
  /** Data frames read. */
  frames = 0;
  /** Record bytes of all frames read (uncompressed). */
  rawBytes = 0;
  /** File offset where the current frame (the last one returned) starts. */
  frameAt = 0;
  private readonly q: ByteQueue;
  private readonly hasher: Hasher;
  private readonly compressor: FrameCompressor | null;
  private readonly workers: FrameWorkers | null;
  private readonly aheadFrames: number;
  private readonly aheadBytes: number;
  // Reading ahead: the frames read (and checked) so far, their record bytes, the queue, its bytes.
  private readFrames = 0;
  private readRaw = 0;
  private readonly ahead: Ahead[] = [];
  private aheadHeld = 0;
  private readDone = false;
  private handedTo: number | null = null;
  private readTrailer: DeltaTrailer | null = null;

  constructor(q: ByteQueue, hasher: Hasher, compressor: FrameCompressor | null, options: DeltaReaderOptions = {}) {
    this.q = q;
    this.hasher = hasher;
    this.compressor = compressor;
    this.workers = compressor === null ? null : (options.workers ?? null);
    this.aheadFrames = Math.max(1, options.aheadFrames ?? 2 * (this.workers?.threads ?? 1));
    this.aheadBytes = options.aheadBytes ?? 48 << 20;
  }

  /** Bytes of the delta read so far (with workers: up to the end of the frame last handed out). */
  get position(): number {
    return this.handedTo ?? this.q.position;
  }

  /** Reads and checks the file header (magic, version, checksum, fields), sets `header` and returns it. */
  async readHeader(): Promise<DeltaHeader> {
    const b = await this.q.read(HEADER_SIZE);
    if (b.length < HEADER_SIZE) {
      if (b.length < 8) throw new XbzrleError('ERR_DELTA_TRUNCATED', `delta is truncated at byte ${b.length} (inside the header)`, { offset: b.length });
      if (!isDeltaMagic(b)) throw new XbzrleError('ERR_DELTA_FORMAT', 'not an xbzrle delta (bad magic)', { offset: 0 });
      throw truncated(b.length, 'the header');
    }
    this.header = decodeHeader(b, this.hasher);
    return this.header;
  }

  /** The next frame's records (uncompressed), or null after the trailer. */
  async nextFrame(): Promise<Uint8Array | null> {
    if (this.header === null) throw new Error('readHeader first');
    if (this.workers !== null) return this.nextAhead(this.workers);
    const at = this.q.position;
    this.frameAt = at;
    const r = await this.readFrame(at);
    if (r === null) {
      this.trailer = this.readTrailer;
      return null;
    }
    const { fh, stored } = r;
    let raw = stored;
    if (fh.codec === CODEC_ZSTD) raw = decompressFrame(this.compressor!, stored, fh, this.frames, at);
    this.frames++;
    this.rawBytes += raw.length;
    return raw;
  }

  /** With workers: fills the read-ahead queue, then hands out its first frame. */
  private async nextAhead(workers: FrameWorkers): Promise<Uint8Array | null> {
    const q = this.ahead;
    while (!this.readDone && (q.length === 0 || (q.length < this.aheadFrames && this.aheadHeld < this.aheadBytes))) q.push(await this.readAhead(workers));
    const a = q.shift();
    if (a === undefined) throw new Error('nextFrame after the trailer or an error');
    this.aheadHeld -= a.bytes;
    this.frameAt = a.at;
    this.handedTo = a.end;
    const raw = await a.result;
    if (raw === null) {
      this.trailer = this.readTrailer;
      return null;
    }
    this.frames++;
    this.rawBytes += raw.length;
    return raw;
  }

  /** Reads and checks the next frame (or the trailer) and starts its decompression; its error, if any, waits in the result. */
  private async readAhead(workers: FrameWorkers): Promise<Ahead> {
    const at = this.q.position;
    const index = this.readFrames;
    let r: { fh: FrameHeader; stored: Uint8Array } | null;
    try {
      r = await this.readFrame(at);
    } catch (err) {
      this.readDone = true;
      return settled({ at, end: this.q.position, result: Promise.reject(err as Error), bytes: 0 });
    }
    if (r === null) {
      this.readDone = true;
      return { at, end: this.q.position, result: Promise.resolve(null), bytes: 0 };
    }
    const { fh, stored } = r;
    const bytes = stored.length + (fh.codec === CODEC_ZSTD ? fh.rawLength : 0);
    this.aheadHeld += bytes;
    if (fh.codec !== CODEC_ZSTD) return { at, end: this.q.position, result: Promise.resolve(stored), bytes };
    const result = workers.decompress(stored, fh.rawLength).then(
      (out) => checkRaw(out, fh, index, at),
      (err: unknown) => {
        throw zstdError(index, at, err);
      },
    );
    return settled({ at, end: this.q.position, result, bytes });
  }

  /**
   * Reads frame number `readFrames` at `at` (header, payload, their checks),
   * or the trailer and its checks (null; the trailer kept for `trailer`). Counts the frame.
   */
  private async readFrame(at: number): Promise<{ fh: FrameHeader; stored: Uint8Array } | null> {
    const header = this.header!;
    const index = this.readFrames;
    const first = await this.q.read(1);
    if (first.length === 0) throw truncated(at, 'the body: no trailer');
    if (first[0] === FRAME_END) {
      const rest = await this.q.read(TRAILER_SIZE - 1);
      if (rest.length < TRAILER_SIZE - 1) throw truncated(at + 1 + rest.length, 'the trailer');
      const b = new Uint8Array(TRAILER_SIZE);
      b[0] = FRAME_END;
      b.set(rest, 1);
      const t = decodeTrailer(b, at, this.hasher);
      if (t.frames !== index || t.rawBytes !== this.readRaw || t.bodyEnd !== at) {
        throw new XbzrleError('ERR_DELTA_CORRUPT', `delta trailer at byte ${at} does not match the body (frames ${index}, trailer says ${t.frames})`, { offset: at });
      }
      if (header.oldDigest !== null && header.oldDigest !== t.oldDigest) {
        throw new XbzrleError('ERR_DELTA_CORRUPT', `delta trailer at byte ${at} disagrees with the header about OLD`, { offset: at });
      }
      if (!(await this.q.atEnd())) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta has data after its trailer at byte ${at + TRAILER_SIZE}`, { offset: at + TRAILER_SIZE });
      this.readTrailer = t;
      return null;
    }
    if (first[0] !== FRAME_DATA) throw corruptFrame(index, at, `unknown frame type 0x${first[0]!.toString(16)}`);
    const rest = await this.q.read(FRAME_HEADER_SIZE - 1);
    if (rest.length < FRAME_HEADER_SIZE - 1) throw truncated(at + 1 + rest.length, `frame ${index}'s header`);
    const hb = new Uint8Array(FRAME_HEADER_SIZE);
    hb[0] = FRAME_DATA;
    hb.set(rest, 1);
    const fh = decodeFrameHeader(hb, index, at, header, this.hasher);
    const stored = await this.q.read(fh.storedLength);
    if (stored.length < fh.storedLength) throw truncated(at + FRAME_HEADER_SIZE + stored.length, `frame ${index}`);
    if (this.hasher.h64(stored) !== fh.payloadHash) throw corruptFrame(index, at, 'payload checksum mismatch');
    if (fh.codec === CODEC_ZSTD) checkCompressed(this.compressor, stored, fh, index, at);
    this.readFrames++;
    this.readRaw += fh.rawLength;
    return { fh, stored };
  }
}

/** `a` with its result's rejection marked handled (it is thrown when the frame is asked for, or never). */
function settled(a: Ahead): Ahead {
  a.result.catch(() => undefined);
  return a;
}

function zstdError(index: number, at: number, err: unknown): XbzrleError {
  return new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${index} at byte ${at} (zstd: ${(err as Error).message})`, { offset: at, cause: err });
}

/**
 * The checks of a compressed frame's payload before it is decompressed, here
 * or on a worker: a decompressor to hand, and the zstd frame's own header
 * ({@link checkZstdFrame}).
 */
export function checkCompressed(compressor: FrameCompressor | null, stored: Uint8Array, fh: FrameHeader, index: number, at: number): asserts compressor is FrameCompressor {
  if (compressor === null) throw new XbzrleError('ERR_DELTA_FORMAT', 'delta frame is zstd-compressed but no decompressor was given', { offset: at });
  checkZstdFrame(stored, fh.rawLength, index, at);
}

/** Frame `index`'s records (at `at`), decompressed on this thread from its checked payload ({@link checkCompressed} passed). */
export function decompressFrame(compressor: FrameCompressor, stored: Uint8Array, fh: FrameHeader, index: number, at: number): Uint8Array {
  let out: Uint8Array;
  try {
    out = compressor.decompress(stored, fh.rawLength);
  } catch (err) {
    throw zstdError(index, at, err);
  }
  return checkRaw(out, fh, index, at);
}

function checkRaw(raw: Uint8Array, fh: FrameHeader, index: number, at: number): Uint8Array {
  if (raw.length !== fh.rawLength) throw corruptFrame(index, at, 'decompressed length mismatch');
  return raw;
}

/** Record kinds of a delta body. */
export const enum RecordKind {
  MemSize,
  Zero,
  Page,
  Xbzrle,
  Ref,
  Eos,
}

/**
 * Walks the records of one frame (records never span frames), checking them:
 * known flags, the one block, page offsets in ascending order inside NEW,
 * XBZRLE encoding and length, reference sources. Reuses its fields.
 */
export class RecordCursor {
  kind: RecordKind = RecordKind.Eos;
  offset = 0;
  /** Payload (page, delta) position in the frame, and its length. */
  at = 0;
  length = 0;
  /** Reference source (`REF_OLD`/`REF_NEW`) and source offset. */
  refKind = 0;
  refOffset = 0;
  /** True once the EOS record was read. */
  sawEos = false;
  /** True once the MEM_SIZE record was read. */
  sawMemSize = false;
  private next = 0;
  private frame: Uint8Array = new Uint8Array(0);
  private frameAt = 0;
  private frameIndex = 0;
  private block: string | null = null;
  private readonly h: DeltaHeader;
  private readonly oldPages: number;

  constructor(header: DeltaHeader) {
    this.h = header;
    this.oldPages = Math.ceil(header.oldSize / header.pageSize);
  }

  reset(frame: Uint8Array, frameAt: number, frameIndex: number): void {
    this.frame = frame;
    this.pos = 0;
    this.frameAt = frameAt;
    this.frameIndex = frameIndex;
  }

  /** The block name of the MEM_SIZE record (null before it was read). */
  get blockName(): string | null {
    return this.block;
  }

  /**
   * @internal Starts over at a frame read out of order (random access to a
   * delta): the records are checked as in a pass from that frame on, with
   * `block` (from frame 0's MEM_SIZE) as the block and no page before.
   */
  resume(frame: Uint8Array, frameAt: number, frameIndex: number, block: string | null): void {
    this.reset(frame, frameAt, frameIndex);
    this.sawMemSize = frameIndex > 0;
    this.sawEos = false;
    this.block = frameIndex > 0 ? block : null;
    this.lastOffset = 0;
  }

  private pos = 0;

  private bad(why: string): XbzrleError {
    return new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${this.frameIndex} at byte ${this.frameAt} (record at ${this.pos} of the frame: ${why})`, { offset: this.frameAt });
  }

  /** Moves to the next record; false at the end of the frame. */
  read(): boolean {
    const f = this.frame;
    const ps = this.h.pageSize;
    const p = this.pos;
    if (p >= f.length) return false;
    if (this.sawEos) throw this.bad('record after EOS');
    if (p + 8 > f.length) throw this.bad('record cut at the frame end');
    const word = readU64(f, p);
    if (word < 0) throw this.bad('offset too large');
    const flags = word % ps;
    const offset = word - flags;
    let q = p + 8;
    if (flags === RAM_SAVE_FLAG.MEM_SIZE) {
      if (this.sawMemSize || p !== 0 || this.frameIndex !== 0 || offset !== this.h.newSize) throw this.bad('unexpected MEM_SIZE');
      const n = f[q] ?? 0;
      if (q + 1 + n + 8 > f.length) throw this.bad('MEM_SIZE cut');
      this.block = decodeBlockName(f, q + 1, n);
      if (this.block === null) throw this.bad('block name not UTF-8');
      if (readU64(f, q + 1 + n) !== this.h.newSize) throw this.bad('MEM_SIZE length');
      this.pos = q + 1 + n + 8;
      this.sawMemSize = true;
      this.kind = RecordKind.MemSize;
      return true;
    }
    if (!this.sawMemSize) throw this.bad('no MEM_SIZE record first');
    if (flags === RAM_SAVE_FLAG.EOS) {
      this.pos = q;
      this.sawEos = true;
      this.kind = RecordKind.Eos;
      return true;
    }
    const type = flags & ~RAM_SAVE_FLAG.CONTINUE;
    if ((flags & RAM_SAVE_FLAG.CONTINUE) === 0) {
      const n = f[q] ?? 0;
      if (q + 1 + n > f.length || decodeBlockName(f, q + 1, n) !== this.block) throw this.bad('unknown block');
      q += 1 + n;
    }
    if (offset >= this.h.newSize) throw this.bad(`page offset ${offset} past NEW's end`);
    if (offset < this.lastOffset) throw this.bad('pages out of order');
    this.lastOffset = offset + ps;
    this.offset = offset;
    switch (type) {
      case RAM_SAVE_FLAG.ZERO:
        if (q + 1 > f.length || f[q] !== 0) throw this.bad('ZERO fill');
        this.pos = q + 1;
        this.kind = RecordKind.Zero;
        return true;
      case RAM_SAVE_FLAG.PAGE:
        if (q + ps > f.length) throw this.bad('PAGE cut');
        this.at = q;
        this.length = ps;
        this.pos = q + ps;
        this.kind = RecordKind.Page;
        return true;
      case RAM_SAVE_FLAG.XBZRLE: {
        if (q + 3 > f.length || f[q] !== ENCODING_FLAG_XBZRLE) throw this.bad('XBZRLE encoding');
        const len = readU16(f, q + 1);
        if (len === 0 || len > ps || q + 3 + len > f.length) throw this.bad('XBZRLE length');
        this.at = q + 3;
        this.length = len;
        this.pos = q + 3 + len;
        this.kind = RecordKind.Xbzrle;
        return true;
      }
      case REF_FLAG: {
        if (q + 9 > f.length) throw this.bad('reference cut');
        const kind = f[q]!;
        const src = readU64(f, q + 1);
        if (src < 0 || src % ps !== 0) throw this.bad('reference offset');
        if (kind === REF_OLD) {
          if (src / ps >= this.oldPages) throw this.bad('reference past OLD');
        } else if (kind === REF_NEW) {
          if (src >= offset) throw this.bad('reference to a later NEW page');
        } else throw this.bad('reference kind');
        this.refKind = kind;
        this.refOffset = src;
        this.pos = q + 9;
        this.kind = RecordKind.Ref;
        return true;
      }
      default:
        throw this.bad(`unknown flags 0x${flags.toString(16)}`);
    }
  }

  private lastOffset = 0;
}

/**
 * @internal A delta's page records in order across its frames (MEM_SIZE
 * skipped), for the appliers: `have` while the cursor holds a record not yet
 * applied, `ended` once EOS was read. `onFrame` sees each frame as it is
 * read (its bytes, file offset, end offset and number).
 */
export class RecordFeed {
  readonly cursor: RecordCursor;
  /** The cursor holds a record not yet applied. */
  have = false;
  /** EOS seen. */
  ended = false;
  /** The frame the cursor reads. */
  frame: Uint8Array = new Uint8Array(0);

  constructor(
    header: DeltaHeader,
    private readonly reader: DeltaReader,
    private readonly onFrame?: (frame: Uint8Array, at: number, end: number, num: number) => void,
  ) {
    this.cursor = new RecordCursor(header);
  }

  /** Moves to the next page record (sets `have`), or to EOS (`ended`), reading the next frame when this one is done. */
  async next(): Promise<void> {
    const cursor = this.cursor;
    for (;;) {
      if (cursor.read()) {
        if (cursor.kind === RecordKind.MemSize) continue;
        if (cursor.kind === RecordKind.Eos) {
          this.ended = true;
          this.have = false;
          return;
        }
        this.have = true;
        return;
      }
      const at = this.reader.position;
      const frame = await this.reader.nextFrame();
      if (frame === null) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt at byte ${at} (records end without EOS)`, { offset: at });
      const num = this.reader.frames - 1;
      cursor.reset(frame, this.reader.frameAt, num);
      this.frame = frame;
      this.onFrame?.(frame, this.reader.frameAt, this.reader.position, num);
    }
  }

  /**
   * After the last page: the records must end there with EOS, the frame with
   * them, and the frames before the trailer (`ERR_DELTA_CORRUPT` otherwise).
   */
  async end(): Promise<void> {
    if (this.have) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt: a record for page ${this.cursor.offset} past NEW's end`);
    if (!this.ended) await this.next();
    if (this.have || !this.ended) throw new XbzrleError('ERR_DELTA_CORRUPT', 'delta is corrupt: records after the last page');
    if (this.cursor.read()) throw new XbzrleError('ERR_DELTA_CORRUPT', 'delta is corrupt: a record after EOS');
    const r = this.reader;
    if ((await r.nextFrame()) !== null) throw new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${r.frames - 1} at byte ${r.frameAt} (a frame after EOS)`, { offset: r.frameAt });
  }
}
