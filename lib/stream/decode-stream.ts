import type { Transform as NodeTransform, TransformCallback, TransformOptions } from 'node:stream';
import { Buffer } from 'node:buffer';
import { DecoderCore, type DecodedPageKind, type DecoderOptions } from '../core/decoder.js';
import { argTypeError } from '../errors.js';
import type { RamBlock } from '../format/record-writer.js';
import type { XbzrleStats } from '../stats.js';
import type { PageStore } from '../store/page-store.js';
import { PacedTransform } from './paced-transform.js';

export type { DecodedPageKind };

/** One output of {@link XbzrleDecodeStream}: a page after its record was applied. */
export interface DecodedPage {
  /** Block name. */
  block: string;
  /** Byte offset of the page in the block. */
  offset: number;
  /** The record that carried it. */
  kind: DecodedPageKind;
  /** The page's content after the record was applied: a copy, yours to keep. */
  data: Buffer;
}

/** Options of {@link XbzrleDecodeStream}. */
export interface XbzrleDecodeStreamOptions extends DecoderOptions {
  /** High-water mark of the readable (page) side, in pages. Default 16. */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (byte) side. Default 64 KiB. */
  writableHighWaterMark?: number;
}

/**
 * The base class as the published declarations show it: Node's `Transform`
 * (readable-stream, the base at run time, has the same API, so consumers need
 * no readable-stream types) with the pause hooks of `PacedTransform`.
 */
declare class NodeDecodeTransform extends NodeTransform {
  /** @internal */
  protected pump(next: () => unknown, callback: TransformCallback): void;
}

/**
 * The typed side of {@link XbzrleDecodeStream}, before Node's `Transform`
 * overloads: bytes in, {@link DecodedPage}s out.
 */
interface DecodeStreamTyping {
  /** A page, after its record was applied to the store. */
  on(event: 'data', listener: (page: DecodedPage) => void): this;
  /** Like `on`, once. */
  once(event: 'data', listener: (page: DecodedPage) => void): this;
  /** Same as `on`. */
  addListener(event: 'data', listener: (page: DecodedPage) => void): this;
  /** Like `on`, called before the listeners already there. */
  prependListener(event: 'data', listener: (page: DecodedPage) => void): this;
  /** Like `once`, called before the listeners already there. */
  prependOnceListener(event: 'data', listener: (page: DecodedPage) => void): this;
  /** Removes a listener added for `data`. */
  off(event: 'data', listener: (page: DecodedPage) => void): this;
  /** Same as `off`. */
  removeListener(event: 'data', listener: (page: DecodedPage) => void): this;
  /** The next page buffered on the readable side, or null. */
  read(size?: number): DecodedPage | null;
  /** `for await` over the pages (an async generator, as Node's). */
  [Symbol.asyncIterator](): AsyncGenerator<DecodedPage, undefined, unknown>;
}

// Type-level only: at run time this is PacedTransform itself.
const DecodeStreamBase = PacedTransform as unknown as new (options: TransformOptions) => DecodeStreamTyping & NodeDecodeTransform;

/**
 * Parses a QEMU RAM record stream and rebuilds the pages it carries.
 *
 * Writable side: bytes, split anywhere. Readable side: {@link DecodedPage}
 * objects, one per ZERO, PAGE or XBZRLE record, in stream order. Pages are
 * kept in `store` (a {@link MemoryPageStore} by default), since an XBZRLE
 * record is a delta against the receiver's current page.
 *
 * Every record gets the checks QEMU's loader makes on the stream itself
 * (framing, block names, offsets within the MEM_SIZE lengths, XBZRLE encoding,
 * length and delta validity); checks that depend on the receiving machine
 * (whether its blocks exist, a MEM_SIZE that changes a fixed-size block, a
 * page past the real block end when there is no MEM_SIZE) are made only with
 * the `target` option. Failures destroy the stream with an
 * {@link XbzrleError} whose `offset` is the stream position:
 * `ERR_RAM_UNKNOWN_FLAGS`, `ERR_RAM_UNSUPPORTED`, `ERR_RAM_NO_BLOCK`,
 * `ERR_RAM_UNKNOWN_BLOCK`, `ERR_RAM_OFFSET`, `ERR_RAM_BAD_ENCODING`,
 * `ERR_RAM_LENGTH`, `ERR_RAM_MEM_SIZE`, `ERR_RAM_SIZE_MISMATCH`, `ERR_XBZRLE_CORRUPT`,
 * `ERR_LIMIT_EXCEEDED`, and `ERR_RAM_TRUNCATED` when the input ends inside a
 * record or without a final EOS. A rejected XBZRLE record leaves its page
 * unchanged. ZERO records with a non-zero fill byte fill the page with it, as
 * QEMU 7.2 does.
 *
 * @example
 * ```ts
 * const store = new MemoryPageStore()
 * await pipeline(fs.createReadStream('ram.xbz'), new XbzrleDecodeStream({ store, emitPages: false }))
 * const image = store.read('ram')
 * ```
 */
export class XbzrleDecodeStream extends DecodeStreamBase {
  /** The page store. */
  readonly store: PageStore;
  /** Page size of the stream. */
  readonly pageSize: number;
  private readonly core: DecoderCore;
  private readonly next: () => unknown;

  constructor(options?: XbzrleDecodeStreamOptions) {
    const core = new DecoderCore(options, (n) => Buffer.allocUnsafe(n));
    super({
      writableObjectMode: false,
      readableObjectMode: true,
      readableHighWaterMark: options?.readableHighWaterMark ?? 16,
      writableHighWaterMark: options?.writableHighWaterMark ?? 64 * 1024,
    });
    this.core = core;
    this.next = () => core.next();
    this.store = core.store;
    this.pageSize = core.pageSize;
  }

  /** Counters in QEMU's `query-migrate` shape (what the stream shows). */
  get stats(): XbzrleStats {
    return this.core.stats;
  }

  /** Blocks from the MEM_SIZE record(s), or undefined when none was seen. */
  get blocks(): RamBlock[] | undefined {
    return this.core.blocks;
  }

  /** Bytes after the last EOS that were ignored (with `allowTrailingData`). */
  get trailingBytes(): number {
    return this.core.trailingBytes;
  }

  /** @internal */
  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!(chunk instanceof Uint8Array)) {
      callback(argTypeError('chunk', 'a Buffer or Uint8Array', chunk));
      return;
    }
    this.core.feed(chunk);
    this.pump(this.next, callback);
  }

  /** @internal */
  override _flush(callback: TransformCallback): void {
    this.core.end();
    this.pump(this.next, callback);
  }

  /** @internal */
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.core.dispose();
    super._destroy(err, callback);
  }
}

/** Creates an {@link XbzrleDecodeStream}. */
export function createXbzrleDecodeStream(options?: XbzrleDecodeStreamOptions): XbzrleDecodeStream {
  return new XbzrleDecodeStream(options);
}
