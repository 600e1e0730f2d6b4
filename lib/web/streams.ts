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

interface Demand {
  readonly desiredSize: number | null;
}

/** True when the readable side is full (and still open). */
function full(controller: Demand): boolean {
  return controller.desiredSize !== null && controller.desiredSize <= 0;
}

/** Set when the stream was cancelled or aborted: pending work stops. */
interface Stop {
  stopped: boolean;
}

/** Yields to the event loop without timer clamping: `setImmediate` (Node, Bun), `MessageChannel` (browsers, Deno). */
const nextTask: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise<void>((resolve) => setImmediate(resolve))
    : typeof MessageChannel === 'function'
      ? () =>
          new Promise<void>((resolve) => {
            const channel = new MessageChannel();
            const port = channel.port1 as unknown as { onmessage: (() => void) | null; close(): void };
            port.onmessage = () => {
              port.close();
              resolve();
            };
            channel.port2.postMessage(null);
          })
      : () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** A transformer with `cancel` (a recent addition to WHATWG Streams: Node has it, browsers may not; runtimes without it ignore it). */
type CancellableTransformer<I, O> = NonNullable<ConstructorParameters<typeof TransformStream<I, O>>[0]> & { cancel?: (reason: unknown) => void };

let transformerCancel: boolean | undefined;

/** Whether this runtime calls a transformer's `cancel` when the readable side is cancelled (probed once). */
function transformerCancelWorks(): boolean {
  if (transformerCancel === undefined) {
    let called = false;
    try {
      const probe = new TransformStream<unknown, unknown>({
        cancel() {
          called = true;
        },
      } as CancellableTransformer<unknown, unknown>);
      probe.readable.cancel().catch(() => undefined);
    } catch {
      // no cancel support
    }
    transformerCancel = called;
  }
  return transformerCancel;
}

/** @internal For tests: pretend the runtime has (or lacks) transformer `cancel`; undefined probes again. */
export function setTransformerCancelForTests(works: boolean | undefined): void {
  transformerCancel = works;
}

/** The transformer, without its `cancel` where the runtime would not call it ({@link guardCancel} calls it then). */
function withoutCancelUnlessNative<I, O>(transformer: CancellableTransformer<I, O>): CancellableTransformer<I, O> {
  if (transformerCancelWorks()) return transformer;
  const { cancel: _unused, ...rest } = transformer;
  return rest;
}

/**
 * Gives `stream` sides of its own where the runtime never calls a
 * transformer's `cancel` (browsers, at the time of writing): a readable side
 * whose `cancel`, and a writable side whose `abort`, run `onCancel` before
 * passing it on (a paused transform must hear of it, or it would wait for a
 * reader that is gone, and its memory must be released). With `onDone`, the
 * readable side is wrapped in any runtime, and `onDone` runs when the reader
 * has read to the end (everything the stream produced was taken).
 */
function guardCancel<I, O>(stream: TransformStream<I, O>, writableStrategy: QueuingStrategy<I>, onCancel: () => void, onDone?: () => void): void {
  const native = transformerCancelWorks();
  if (!native) {
    const writer = stream.writable.getWriter();
    // Each write settles as the stream's own would (once transformed); this side's queue,
    // with the stream's strategy, does the buffering.
    const writable = new WritableStream<I>(
      {
        start(controller) {
          // The stream failing or its reader cancelling errors this side at once, not
          // at the next write (a pipe into it must hear of it while idle).
          writer.closed.catch((err: unknown) => controller.error(err));
        },
        write(chunk) {
          return writer.write(chunk);
        },
        close() {
          return writer.close();
        },
        abort(reason) {
          onCancel();
          return writer.abort(reason);
        },
      },
      writableStrategy,
    );
    Object.defineProperty(stream, 'writable', { value: writable, configurable: true });
  }
  if (native && onDone === undefined) return;
  const reader = stream.readable.getReader();
  const readable = new ReadableStream<O>(
    {
      async pull(controller) {
        let r: Awaited<ReturnType<typeof reader.read>>;
        try {
          r = await reader.read();
        } catch (err) {
          onCancel(); // the stream failed or its writable side was aborted
          throw err;
        }
        if (r.done) {
          onDone?.();
          controller.close();
        } else controller.enqueue(r.value);
      },
      cancel(reason) {
        onCancel();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  Object.defineProperty(stream, 'readable', { value: readable, configurable: true });
}

/** A readable high-water mark of 0 would never let a paused transform go on: it is raised to 1. */
function readableMark(value: number | undefined, fallback: number): number {
  return value === 0 ? 1 : (value ?? fallback);
}

/**
 * Waits until the readable side wants more. A `TransformStream` does not tell
 * its transformer when the consumer reads, so this polls: a few immediate
 * turns of the event loop (a consumer that keeps up), then timers backing
 * off to 8 ms (a slow one). It only runs inside one huge input (a record of
 * many pages, a chunk of many records), as between inputs the stream itself
 * holds the writer back. Throws once the stream is cancelled or aborted.
 */
async function demand(controller: Demand, stop: Stop): Promise<void> {
  for (let spins = 0; full(controller); spins++) {
    if (stop.stopped) throw stoppedError();
    if (spins < 16) await nextTask();
    else await new Promise((resolve) => setTimeout(resolve, Math.min(8, 1 << ((spins - 16) >> 2))));
  }
  if (stop.stopped) throw stoppedError();
}

function stoppedError(): Error {
  return new Error('The stream was cancelled');
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
      if (core.outbox.length === 0) return;
      for (const chunk of core.outbox) {
        core.stats.transferred += chunk.length;
        controller.enqueue(chunk);
      }
      core.outbox.length = 0;
    };
    const stop: Stop = { stopped: false };
    const transformer: CancellableTransformer<EncoderInput, Uint8Array> = {
      async transform(chunk, controller) {
        try {
          if (stop.stopped) throw stoppedError();
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
            if (i < count) await demand(controller, stop);
          }
        } catch (err) {
          core.dispose();
          throw err;
        }
      },
      flush(controller) {
        try {
          core.finish();
          take(controller);
        } catch (err) {
          core.dispose();
          throw err;
        }
        // A cache of its own goes now. A shared one keeps its pages only once the reader
        // has taken every chunk (see guardCancel's onDone); cancelled first, it is emptied.
        if (!core.sharesCache) core.dispose(true);
      },
      // The reader cancelled or the writer aborted: stop, and release the kernel's memory
      // (a shared cache is emptied, as the receiver may not have got its pages).
      cancel() {
        stop.stopped = true;
        core.dispose();
      },
    };
    const writableStrategy: QueuingStrategy<EncoderInput> = { highWaterMark: options?.writableHighWaterMark ?? 16 };
    super(withoutCancelUnlessNative(transformer), writableStrategy, {
      highWaterMark: readableMark(options?.readableHighWaterMark, 64 * 1024),
      size: (chunk) => chunk.byteLength,
    });
    guardCancel(this, writableStrategy, () => transformer.cancel!(undefined), core.sharesCache ? () => core.dispose(true) : undefined);
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
    const stop: Stop = { stopped: false };
    const transformer: CancellableTransformer<Uint8Array, WebDecodedPage> = {
      async transform(chunk, ctrl) {
        controller = ctrl;
        if (!(chunk instanceof Uint8Array)) throw argTypeError('chunk', 'a Uint8Array', chunk);
        if (stop.stopped) throw stoppedError();
        core.write(chunk);
        for (;;) {
          const r = core.run(() => full(ctrl));
          if (r === 'done') return;
          if (r === 'paused') await demand(ctrl, stop);
          else {
            await r; // an async page store
            if (stop.stopped) throw stoppedError();
          }
        }
      },
      async flush() {
        await core.end();
      },
      cancel() {
        stop.stopped = true;
      },
    };
    const writableStrategy: QueuingStrategy<Uint8Array> = { highWaterMark: options?.writableHighWaterMark ?? 64 * 1024, size: (chunk) => chunk.byteLength };
    super(withoutCancelUnlessNative(transformer), writableStrategy, { highWaterMark: readableMark(options?.readableHighWaterMark, 16) });
    guardCancel(this, writableStrategy, () => transformer.cancel!(undefined));
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
