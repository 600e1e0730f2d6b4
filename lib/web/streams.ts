import { DecoderCore, type DecodedPageKind, type DecoderOptions } from '../core/decoder.js';
import { EncoderCore, type EncoderOptions, type PageRecord } from '../core/encoder.js';
import type { PageCache } from '../cache/page-cache.js';
import { argTypeError } from '../errors.js';
import type { RamBlock } from '../format/record-writer.js';
import type { XbzrleStats } from '../stats.js';
import type { PageStore } from '../store/page-store.js';

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
  /** High-water mark of the readable (byte) side, in bytes. Default 64 KiB. */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (record) side, in records. Default 16. */
  writableHighWaterMark?: number;
}

/** Options of {@link XbzrleDecoderStream}. */
export interface XbzrleDecoderStreamOptions extends DecoderOptions {
  /** High-water mark of the readable (page) side, in pages. Default 16. */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (byte) side, in bytes. Default 64 KiB. */
  writableHighWaterMark?: number;
}

interface Demand {
  readonly desiredSize: number | null;
}

/** True when the readable side is full (and still open). */
function full(controller: Demand): boolean {
  return controller.desiredSize !== null && controller.desiredSize <= 0;
}

/**
 * Waits until the readable side wants more. A `TransformStream` does not tell
 * its transformer when the consumer reads, so this polls; it only runs inside
 * one huge input (a record of many pages, a chunk of many records), as
 * between inputs the stream itself holds the writer back.
 */
async function demand(controller: Demand): Promise<void> {
  while (full(controller)) await new Promise((resolve) => setTimeout(resolve, 1));
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
export class XbzrleEncoderStream extends TransformStream<EncoderInput, Uint8Array> {
  /** Page size of the stream. */
  readonly pageSize: number;
  /** The page cache in use. */
  readonly cache: PageCache;
  private readonly core: EncoderCore;

  constructor(options?: XbzrleEncoderStreamOptions) {
    const core = new EncoderCore(options);
    const take = (controller: TransformStreamDefaultController<Uint8Array>): void => {
      for (const chunk of core.outbox) {
        core.stats.transferred += chunk.length;
        controller.enqueue(chunk);
      }
      core.outbox.length = 0;
    };
    super(
      {
        async transform(chunk, controller) {
          try {
            if (chunk === 'sync' || chunk === 'final') {
              core.sync(chunk === 'final');
              take(controller);
              return;
            }
            const { record, key } = core.begin(chunk);
            const count = record.data.length / core.pageSize;
            for (let i = 0; i < count; ) {
              i = core.encodeRange(record, key, i, Math.min(count, i + core.stagePages), () => {
                take(controller);
                return full(controller);
              });
              if (i < count) await demand(controller);
            }
          } catch (err) {
            core.dispose();
            throw err;
          }
        },
        flush(controller) {
          core.finish();
          take(controller);
          core.dispose();
        },
      },
      { highWaterMark: options?.writableHighWaterMark ?? 16 },
      { highWaterMark: options?.readableHighWaterMark ?? 64 * 1024, size: (chunk) => chunk.byteLength },
    );
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
export class XbzrleDecoderStream extends TransformStream<Uint8Array, WebDecodedPage> {
  /** The page store. */
  readonly store: PageStore;
  /** Page size of the stream. */
  readonly pageSize: number;
  private readonly core: DecoderCore;

  constructor(options?: XbzrleDecoderStreamOptions) {
    let controller: TransformStreamDefaultController<WebDecodedPage> | undefined;
    const core = new DecoderCore(options, (block, offset, kind, data) => controller!.enqueue({ block, offset, kind, data }));
    super(
      {
        async transform(chunk, ctrl) {
          controller = ctrl;
          if (!(chunk instanceof Uint8Array)) throw argTypeError('chunk', 'a Uint8Array', chunk);
          core.write(chunk);
          for (;;) {
            const r = core.run(() => full(ctrl));
            if (r === 'done') return;
            if (r === 'paused') await demand(ctrl);
            else await r;
          }
        },
        async flush() {
          await core.end();
        },
      },
      { highWaterMark: options?.writableHighWaterMark ?? 64 * 1024, size: (chunk) => chunk.byteLength },
      { highWaterMark: options?.readableHighWaterMark ?? 16 },
    );
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
