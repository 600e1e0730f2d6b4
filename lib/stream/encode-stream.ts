import type { Transform as NodeTransform, TransformCallback, TransformOptions } from 'node:stream';
import { Buffer } from 'node:buffer';
import type { PageCache } from '../cache/page-cache.js';
import { EncoderCore, type EncoderOptions, type PageRecord } from '../core/encoder.js';
import type { XbzrleStats } from '../stats.js';
import { PacedTransform } from './paced-transform.js';

export type { PageRecord };

/** Options of {@link XbzrleEncodeStream}. */
export interface XbzrleEncodeStreamOptions extends EncoderOptions {
  /** High-water mark of the readable (byte) side. Default 64 KiB. */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (record) side, in records. Default 16. */
  writableHighWaterMark?: number;
}

/** Options of {@link XbzrleEncodeStream.sync}. */
export interface SyncOptions {
  /** QEMU's last stage: from now on the cache is no longer filled or refreshed. */
  final?: boolean;
}

class SyncRequest {
  constructor(readonly final: boolean) {}
}

/**
 * The base class as the published declarations show it: Node's `Transform`
 * (readable-stream, the base at run time, has the same API, so consumers need
 * no readable-stream types) with the pause hook of `PacedTransform`.
 */
declare class NodeEncodeTransform extends NodeTransform {
  /** @internal */
  protected pump(next: () => unknown, callback: TransformCallback): void;
}

/**
 * The typed side of {@link XbzrleEncodeStream}, before Node's `Transform`
 * overloads: its output, byte chunks (`Buffer`s). Records go in through
 * `write()` as into any object-mode `Transform`.
 */
interface EncodeStreamTyping {
  /** Output bytes, in chunks of at least `chunkSize` where the input allows. */
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  /** Like `on`, once. */
  once(event: 'data', listener: (chunk: Buffer) => void): this;
  /** Same as `on`. */
  addListener(event: 'data', listener: (chunk: Buffer) => void): this;
  /** Like `on`, called before the listeners already there. */
  prependListener(event: 'data', listener: (chunk: Buffer) => void): this;
  /** Like `once`, called before the listeners already there. */
  prependOnceListener(event: 'data', listener: (chunk: Buffer) => void): this;
  /** Removes a listener added for `data`. */
  off(event: 'data', listener: (chunk: Buffer) => void): this;
  /** Same as `off`. */
  removeListener(event: 'data', listener: (chunk: Buffer) => void): this;
  /** The next chunk of bytes buffered on the readable side, or null. */
  read(size?: number): Buffer | null;
  /** `for await` over the output chunks (an async generator, as Node's). */
  [Symbol.asyncIterator](): AsyncGenerator<Buffer, undefined, unknown>;
}

// Type-level only: at run time this is PacedTransform itself.
const EncodeStreamBase = PacedTransform as unknown as new (options: TransformOptions) => EncodeStreamTyping & NodeEncodeTransform;

/**
 * Turns page records into a QEMU RAM record stream with XBZRLE deltas.
 *
 * Writable side: {@link PageRecord} objects. Readable side: bytes, in chunks
 * of at least `chunkSize` (64 KiB) where the input allows; call
 * {@link XbzrleEncodeStream.sync} to end a round (it writes EOS and pushes out
 * what is pending).
 *
 * Per page, QEMU's sender decisions (spec: ram-stream.md §8): an all-zero page
 * goes as ZERO (fill 0) and its cache entry becomes a zero page; a cache miss
 * goes as PAGE and the page enters the cache; a hit that is unchanged sends
 * nothing; a hit with a delta that fits a page goes as XBZRLE; one that does
 * not (overflow) as PAGE; the cache then holds what was sent, so the two sides
 * stay in step. Unlike QEMU, pages enter the cache from their first send.
 *
 * The stream's own cache (when no `cache` option is given) is released when
 * the stream closes.
 *
 * @example
 * ```ts
 * const enc = new XbzrleEncodeStream({ blocks: [{ id: 'ram', length: image.length }] })
 * enc.pipe(socket)
 * enc.write({ block: 'ram', offset: 0, data: image })
 * enc.sync()              // end of round 1
 * enc.write({ block: 'ram', offset: 0, data: image2 })
 * enc.end()
 * ```
 */
export class XbzrleEncodeStream extends EncodeStreamBase {
  /** Page size of the stream. */
  readonly pageSize: number;
  /** The page cache in use. */
  readonly cache: PageCache;
  private readonly core: EncoderCore;
  private readonly next: () => Uint8Array | undefined;

  constructor(options?: XbzrleEncodeStreamOptions) {
    const core = new EncoderCore(options, (n) => Buffer.allocUnsafe(n));
    super({
      writableObjectMode: true,
      readableObjectMode: false,
      readableHighWaterMark: options?.readableHighWaterMark ?? 64 * 1024,
      writableHighWaterMark: options?.writableHighWaterMark ?? 16,
    });
    this.core = core;
    this.next = () => core.next();
    this.pageSize = core.pageSize;
    this.cache = core.cache;
  }

  /** Counters in QEMU's `query-migrate` shape. */
  get stats(): XbzrleStats {
    return this.core.currentStats();
  }

  /**
   * Ends a dirty-sync round: writes EOS after every record written before it,
   * pushes out what is pending, and advances the cache generation. Ordered
   * with `write()` like zlib's `flush()`: no need to wait for earlier writes.
   * After `sync({ final: true })` the cache is no longer filled or refreshed
   * (QEMU's last stage); entries of pages sent after that are dropped so the
   * cache never disagrees with the receiver.
   */
  sync(options?: SyncOptions | ((err?: Error | null) => void), callback?: (err?: Error | null) => void): void {
    if (typeof options === 'function') {
      callback = options;
      options = undefined;
    }
    const final = options?.final ?? false;
    if (typeof final !== 'boolean') throw new TypeError('The "options.final" argument must be a boolean');
    this.write(new SyncRequest(final), callback);
  }

  /** Resizes the page cache now, keeping entries (see {@link PageCache.resize}). Returns the real size. */
  setCacheSize(bytes: number): number {
    return this.cache.resize(bytes);
  }

  /** @internal */
  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      if (chunk instanceof SyncRequest) this.core.sync(chunk.final);
      else this.core.feed(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    this.pump(this.next, callback);
  }

  /** @internal */
  override _flush(callback: TransformCallback): void {
    this.core.end();
    this.pump(this.next, callback);
  }

  /** @internal */
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Ended and read to the end: the reader has every page the cache holds. Otherwise
    // (destroyed mid-stream, or after end() with output still buffered) a shared cache is emptied.
    this.core.dispose(this.readableEnded);
    super._destroy(err, callback);
  }
}

/** Creates an {@link XbzrleEncodeStream}. */
export function createXbzrleEncodeStream(options?: XbzrleEncodeStreamOptions): XbzrleEncodeStream {
  return new XbzrleEncodeStream(options);
}
