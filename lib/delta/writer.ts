/**
 * Writes the delta container (docs/delta-format.md): the header, records
 * gathered into frames (each optionally zstd-compressed, each checksummed),
 * and the trailer. Pure code over `Uint8Array`s: no Node module.
 */
import { encodeName, writeU16, writeU64 } from '../format/bytes.js';
import { ENCODING_FLAG_XBZRLE, RAM_SAVE_FLAG } from '../format/flags.js';
import type { FrameCompressor, FrameWorkers } from './codec.js';
import { CODEC_STORED, CODEC_ZSTD, encodeFrameHeader, encodeHeader, encodeTrailer, FRAME_SLACK, HEADER_SIZE, REF_FLAG, type DeltaHeader } from './format.js';
import type { Hasher } from './hash.js';

/** Options of {@link DeltaWriter}. */
export interface DeltaWriterOptions {
  /** The header to write (its `oldDigest` may be null: then it is only in the trailer). */
  header: DeltaHeader;
  /** XXH64 provider ({@link loadHasher}). */
  hasher: Hasher;
  /** Frame compressor, or null to store frames. */
  compressor: FrameCompressor | null;
  /** Block name of the records (default `ram`). */
  block?: string;
  /**
   * Compress frames on these workers (with a `compressor`): frames then go
   * out in order as they are done, through {@link DeltaWriter.drain}, and the
   * delta ends with {@link DeltaWriter.finishAsync}. The bytes are the same.
   */
  workers?: FrameWorkers | null;
}

/** A frame closed and compressing on a worker. */
interface InFlight {
  raw: Uint8Array;
  /** The whole buffer `raw` is a view of (reused once the frame went out compressed). */
  copy: Uint8Array;
  result: Promise<Uint8Array>;
  done: boolean;
}

/**
 * Serialises one delta. Call the record methods in ascending page order
 * (each page at most once), then {@link DeltaWriter.finish}. Every chunk
 * handed to `onChunk` is a fresh array the writer does not touch again.
 */
export class DeltaWriter {
  /** Bytes handed to `onChunk` so far. */
  bytesWritten = 0;
  /** Data frames written so far. */
  frames = 0;
  /** Record bytes written so far (uncompressed). */
  rawBytes = 0;

  private readonly header: DeltaHeader;
  private readonly hasher: Hasher;
  private readonly compressor: FrameCompressor | null;
  private readonly onChunk: (chunk: Uint8Array) => void;
  private readonly buf: Uint8Array;
  private readonly name: Uint8Array;
  private pos = 0;
  private named = false;
  private readonly level: number;
  private readonly workers: FrameWorkers | null;
  private readonly inFlight: InFlight[] = [];
  /**
   * Frame-sized buffers for the copies of frames in flight, reused: fresh
   * memory costs a page fault per 4 KiB on first touch (a copy of each 1 MiB
   * frame cost ~3 ms of the calling thread on this project's VM).
   */
  private readonly spare: Uint8Array[] = [];

  constructor(options: DeltaWriterOptions, onChunk: (chunk: Uint8Array) => void) {
    this.header = options.header;
    this.hasher = options.hasher;
    this.compressor = options.compressor;
    this.workers = options.compressor === null ? null : (options.workers ?? null);
    this.level = options.header.level;
    this.onChunk = onChunk;
    this.name = encodeName(options.block ?? 'ram');
    this.buf = new Uint8Array(options.header.frameSize + FRAME_SLACK);
    this.out(encodeHeader(options.header, this.hasher));
    // MEM_SIZE: the total, then the one block.
    writeU64(this.buf, 0, options.header.newSize + RAM_SAVE_FLAG.MEM_SIZE);
    this.buf[8] = this.name.length;
    this.buf.set(this.name, 9);
    writeU64(this.buf, 9 + this.name.length, options.header.newSize);
    this.pos = 17 + this.name.length;
  }

  /** A ZERO record (fill 0). */
  zero(offset: number): void {
    this.head(offset, RAM_SAVE_FLAG.ZERO);
    this.buf[this.pos++] = 0;
    this.done();
  }

  /** A PAGE record with the page at `src[at]`. */
  page(offset: number, src: Uint8Array, at: number): void {
    const ps = this.header.pageSize;
    this.head(offset, RAM_SAVE_FLAG.PAGE);
    this.buf.set(src.subarray(at, at + ps), this.pos);
    this.pos += ps;
    this.done();
  }

  /** An XBZRLE record carrying `len` delta bytes at `delta[at]`. */
  xbzrle(offset: number, delta: Uint8Array, at: number, len: number): void {
    this.head(offset, RAM_SAVE_FLAG.XBZRLE);
    this.buf[this.pos] = ENCODING_FLAG_XBZRLE;
    writeU16(this.buf, this.pos + 1, len);
    this.buf.set(delta.subarray(at, at + len), this.pos + 3);
    this.pos += 3 + len;
    this.done();
  }

  /** A reference record: the page equals OLD's (`REF_OLD`) or NEW's (`REF_NEW`, earlier) page at `source`. */
  ref(offset: number, kind: number, source: number): void {
    this.head(offset, REF_FLAG);
    this.buf[this.pos] = kind;
    writeU64(this.buf, this.pos + 1, source);
    this.pos += 9;
    this.done();
  }

  /** EOS, the last frame and the trailer (without workers). */
  finish(oldDigest: bigint, newDigest: bigint): void {
    if (this.workers !== null) throw new RangeError('a writer with workers ends with finishAsync');
    this.endRecords();
    this.trailer(oldDigest, newDigest);
  }

  /** EOS, the last frame and the trailer, once every frame in flight went out. */
  async finishAsync(oldDigest: bigint, newDigest: bigint): Promise<void> {
    this.endRecords();
    await this.drain(0);
    this.trailer(oldDigest, newDigest);
  }

  /** Frames closed and not yet written (compressing on the workers). */
  get framesInFlight(): number {
    return this.inFlight.length;
  }

  /**
   * Writes out, in order, the frames the workers finished, waiting until at
   * most `limit` are left in flight. Without workers there is never any.
   */
  async drain(limit: number): Promise<void> {
    const q = this.inFlight;
    while (q.length > 0 && (q.length > limit || q[0]!.done)) {
      const f = q[0]!;
      const c = await f.result;
      q.shift();
      // Reused unless it went out as it is (stored: the consumer may keep the chunk).
      if (!this.writeFrame(f.raw, c) && this.spare.length < MAX_SPARE) this.spare.push(f.copy);
    }
  }

  private endRecords(): void {
    writeU64(this.buf, this.pos, RAM_SAVE_FLAG.EOS);
    this.pos += 8;
    this.emitFrame();
  }

  private trailer(oldDigest: bigint, newDigest: bigint): void {
    this.out(encodeTrailer({ frames: this.frames, rawBytes: this.rawBytes, oldDigest, newDigest, bodyEnd: this.bytesWritten }, this.hasher));
  }

  private head(offset: number, flag: number): void {
    if (this.named) {
      writeU64(this.buf, this.pos, offset + flag + RAM_SAVE_FLAG.CONTINUE);
      this.pos += 8;
    } else {
      writeU64(this.buf, this.pos, offset + flag);
      this.buf[this.pos + 8] = this.name.length;
      this.buf.set(this.name, this.pos + 9);
      this.pos += 9 + this.name.length;
      this.named = true;
    }
  }

  private done(): void {
    if (this.pos >= this.header.frameSize) this.emitFrame();
  }

  private emitFrame(): void {
    const raw = this.buf.subarray(0, this.pos);
    this.pos = 0;
    if (this.workers !== null) {
      // The records are copied out (the buffer takes the next frame's); written by drain() in order.
      const copy = this.spare.pop() ?? new Uint8Array(this.buf.length);
      const frame = copy.subarray(0, raw.length);
      frame.set(raw);
      const f: InFlight = { raw: frame, copy, result: this.workers.compress(frame, this.level), done: false };
      f.result.then(
        () => void (f.done = true),
        () => void (f.done = true), // the error surfaces in drain()
      );
      this.inFlight.push(f);
      return;
    }
    this.writeFrame(raw, this.compressor === null ? null : this.compressor.compress(raw, this.level));
  }

  /** A frame's header and payload: compressed when that is smaller (`c`), else stored; true when `raw` itself went out. */
  private writeFrame(raw: Uint8Array, c: Uint8Array | null): boolean {
    let stored: Uint8Array = raw;
    let codec = CODEC_STORED;
    if (c !== null && c.length < raw.length) {
      stored = c;
      codec = CODEC_ZSTD;
    }
    if (stored === raw && this.workers === null) stored = raw.slice();
    this.out(encodeFrameHeader(this.frames, codec, stored, raw.length, this.hasher));
    this.out(stored);
    this.frames++;
    this.rawBytes += raw.length;
    return stored === raw;
  }

  private out(chunk: Uint8Array): void {
    this.bytesWritten += chunk.length;
    this.onChunk(chunk);
  }
}

/** Frame copies kept for reuse (the workers have at most a few frames each in hand). */
const MAX_SPARE = 8;

export { HEADER_SIZE };
