import { DecoderCore, type DecodedPageKind, type DecoderOptions } from '../core/decoder.js';
import { EncoderCore, type EncoderOptions, type PageRecord } from '../core/encoder.js';
import type { PageCache } from '../cache/page-cache.js';
import { argTypeError } from '../errors.js';
import type { RamBlock } from '../format/record-writer.js';
import type { XbzrleStats } from '../stats.js';
import type { PageStore } from '../store/page-store.js';
import { pullPair } from './pull-pair.js';

/** What {@link XbzrleEncoderStream} takes: a page record, or `'sync'` / `'final'` to end a round. */
export type EncoderInput = PageRecord | 'sync' | 'final';

/** One output of {@link XbzrleDecoderStream}: a page after its record was applied. */
export interface WebDecodedPage {
  /** Block name. */
  block: string;
  /** Byte offset of the page in the block. */
  offset: number;
  /** The record that carried it. */
  kind: DecodedPageKind;
  /** The page's content after the record was applied: a copy, yours to keep. */
  data: Uint8Array;
}

/** Options of {@link XbzrleEncoderStream}. */
export interface XbzrleEncoderStreamOptions extends EncoderOptions {
  /** High-water mark of the readable (byte) side, in bytes. Default 64 KiB (0 is taken as 1). */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (record) side, in records. Default 16. */
  writableHighWaterMark?: number;
}

/** Options of {@link XbzrleDecoderStream}. */
export interface XbzrleDecoderStreamOptions extends DecoderOptions {
  /** High-water mark of the readable (page) side, in pages. Default 16 (0 is taken as 1). */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (byte) side, in bytes. Default 64 KiB. */
  writableHighWaterMark?: number;
}

/** A readable high-water mark of 0 would never let the core go on: it is raised to 1. */
function readableMark(value: number | undefined, fallback: number): number {
  return value === 0 ? 1 : (value ?? fallback);
}

/**
 * The Node `XbzrleEncodeStream` as a WHATWG `TransformStream`, for browsers,
 * Deno and edge runtimes: the same encoder core, no Node modules. The
 * writable side takes `{ block, offset, data }` records and `'sync'` /
 * `'final'` markers (a round's end, as `sync()` / `sync({ final: true })`);
 * the readable side gives `Uint8Array` chunks. Closing the writable side
 * writes the final EOS.
 *
 * @example
 * ```ts
 * const enc = new XbzrleEncoderStream({ blocks: [{ id: 'ram', length: image.length }] })
 * const writer = enc.writable.getWriter()
 * writer.write({ block: 'ram', offset: 0, data: image }); writer.write('sync'); writer.close()
 * await fetch(url, { method: 'POST', body: enc.readable, duplex: 'half' })
 * ```
 */
export class XbzrleEncoderStream implements TransformStream<EncoderInput, Uint8Array> {
  /** Output bytes. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Page records and round ends in. */
  readonly writable: WritableStream<EncoderInput>;
  /** Page size of the stream. */
  readonly pageSize: number;
  /** The page cache in use. */
  readonly cache: PageCache;
  private readonly core: EncoderCore;

  constructor(options?: XbzrleEncoderStreamOptions) {
    const core = new EncoderCore(options);
    const pair = pullPair<EncoderInput, Uint8Array>(
      {
        feed: (input) => (input === 'sync' || input === 'final' ? core.sync(input === 'final') : core.feed(input)),
        end: () => core.end(),
        next: () => core.next(),
        // Cancelled, aborted or failed: the kernel's memory goes, and a shared cache is
        // emptied (the receiver may not have got its pages).
        stop: () => core.dispose(),
        done: () => core.dispose(true),
      },
      { highWaterMark: options?.writableHighWaterMark ?? 16 },
      { highWaterMark: readableMark(options?.readableHighWaterMark, 64 * 1024), size: (chunk) => chunk.byteLength },
    );
    this.readable = pair.readable;
    this.writable = pair.writable;
    this.core = core;
    this.pageSize = core.pageSize;
    this.cache = core.cache;
  }

  /** Counters in QEMU's `query-migrate` shape. */
  get stats(): XbzrleStats {
    return this.core.currentStats();
  }

  /** Resizes the page cache now, keeping entries. Returns the real size. */
  setCacheSize(bytes: number): number {
    return this.cache.resize(bytes);
  }
}

/**
 * The Node `XbzrleDecodeStream` as a WHATWG `TransformStream`: the same decoder
 * core, no Node modules. The writable side takes `Uint8Array` chunks split
 * anywhere; the readable side gives `{ block, offset, kind, data }` pages.
 * Errors are `XbzrleError`s with stream offsets; the stream must end with an
 * EOS record.
 *
 * @example
 * ```ts
 * const store = new MemoryPageStore()
 * for await (const page of response.body.pipeThrough(new XbzrleDecoderStream({ store }))) draw(page)
 * ```
 */
export class XbzrleDecoderStream implements TransformStream<Uint8Array, WebDecodedPage> {
  /** Decoded pages. */
  readonly readable: ReadableStream<WebDecodedPage>;
  /** Bytes in, split anywhere. */
  readonly writable: WritableStream<Uint8Array>;
  /** The page store. */
  readonly store: PageStore;
  /** Page size of the stream. */
  readonly pageSize: number;
  private readonly core: DecoderCore;

  constructor(options?: XbzrleDecoderStreamOptions) {
    const core = new DecoderCore(options);
    const pair = pullPair<Uint8Array, WebDecodedPage>(
      {
        feed: (chunk) => {
          if (!(chunk instanceof Uint8Array)) throw argTypeError('chunk', 'a Uint8Array', chunk);
          core.feed(chunk);
        },
        end: () => core.end(),
        next: () => core.next(),
        stop: () => core.dispose(),
        done: () => core.dispose(),
      },
      { highWaterMark: options?.writableHighWaterMark ?? 64 * 1024, size: (chunk) => chunk.byteLength },
      { highWaterMark: readableMark(options?.readableHighWaterMark, 16) },
    );
    this.readable = pair.readable;
    this.writable = pair.writable;
    this.core = core;
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
}
