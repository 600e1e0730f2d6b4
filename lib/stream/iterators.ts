import type { Duplex } from 'node:stream';
import type { XbzrleStats } from '../stats.js';
import { argTypeError } from '../errors.js';
import { XbzrleDecodeStream, type DecodedPage, type XbzrleDecodeStreamOptions } from './decode-stream.js';
import { XbzrleEncodeStream, type PageRecord, type XbzrleEncodeStreamOptions } from './encode-stream.js';

/**
 * What {@link encodeRounds} takes: a page record; a whole round (an array of
 * records, followed by a `sync()`); or `'sync'` / `'final'` to end a round
 * (`'final'` is `sync({ final: true })`).
 */
export type RoundItem = PageRecord | readonly PageRecord[] | 'sync' | 'final';

/**
 * Encodes page records into a RAM record stream without stream classes:
 * yields the output chunks; returns the encoder's statistics (also readable
 * as `.stats` on the generator at any time). Backpressure
 * holds: the source is read only as fast as the chunks are consumed. Leaving
 * the loop early (`break`) stops at once and returns the source's iterator.
 *
 * @param source - records, rounds (arrays of records) and `'sync'` markers
 * @param options - as {@link XbzrleEncodeStream}
 * @throws XbzrleError as the encoder does (e.g. `ERR_INVALID_RECORD`), or what the source throws
 *
 * @example
 * ```ts
 * for await (const chunk of encodeRounds([round1, round2])) socket.write(chunk)
 * ```
 */
export function encodeRounds(source: AsyncIterable<RoundItem> | Iterable<RoundItem>, options?: XbzrleEncodeStreamOptions): WithStats<Uint8Array> {
  const enc = new XbzrleEncodeStream(options);
  return withStats(encodeGen(enc, source), () => enc.stats);
}

async function* encodeGen(enc: XbzrleEncodeStream, source: AsyncIterable<RoundItem> | Iterable<RoundItem>): AsyncGenerator<Uint8Array, XbzrleStats, undefined> {
  yield* drive<Uint8Array, RoundItem>(enc, source, async (item, write) => {
      if (item === 'sync' || item === 'final') await write(null, item === 'final');
      else if (Array.isArray(item)) {
        for (const record of item as readonly PageRecord[]) await write(record);
        await write(null, false);
      } else await write(item);
  });
  return enc.stats;
}

/**
 * Decodes a RAM record stream without stream classes: yields a
 * {@link DecodedPage} per page record; returns the decoder's statistics
 * (also readable as `.stats` on the generator at any time). Leaving the
 * loop early (`break`) stops at once, even while the source is idle, and
 * destroys a Node stream source (as `for await` over it would).
 *
 * @param source - byte chunks, split anywhere
 * @param options - as {@link XbzrleDecodeStream}
 * @throws XbzrleError on malformed input, as the decoder does
 *
 * @example
 * ```ts
 * for await (const page of decodeRecords(fs.createReadStream('rounds.xs'))) use(page)
 * ```
 */
export function decodeRecords(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: XbzrleDecodeStreamOptions): WithStats<DecodedPage> {
  const dec = new XbzrleDecodeStream(options);
  return withStats(decodeGen(dec, source), () => dec.stats);
}

async function* decodeGen(dec: XbzrleDecodeStream, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<DecodedPage, XbzrleStats, undefined> {
  yield* drive<DecodedPage, Uint8Array>(dec, source, (chunk, write) => write(chunk));
  return dec.stats;
}

/**
 * An async generator of the helpers: also returns the statistics when done,
 * and has them as `stats` at any time (handy with `for await` and
 * `pipeline()`, which drop a generator's return value).
 */
export type WithStats<T> = AsyncGenerator<T, XbzrleStats, undefined> & StatsHolder;

/** Something with live statistics. */
export interface StatsHolder {
  /** The stream's counters, as they are now. */
  readonly stats: XbzrleStats;
}

function withStats<T>(gen: AsyncGenerator<T, XbzrleStats, undefined>, stats: () => XbzrleStats): WithStats<T> {
  Object.defineProperty(gen, 'stats', { get: stats, enumerable: true });
  return gen as WithStats<T>;
}

/** The iterator of a sync or async iterable, and whether it is sync (its values may be promises to await, as `for await` does). */
function iteratorOf<S>(source: AsyncIterable<S> | Iterable<S>): { iterator: AsyncIterator<S> | Iterator<S>; sync: boolean } {
  const asyncIterator = (source as Partial<AsyncIterable<S>>)[Symbol.asyncIterator];
  if (typeof asyncIterator === 'function') return { iterator: asyncIterator.call(source), sync: false };
  const syncIterator = (source as Partial<Iterable<S>>)[Symbol.iterator];
  if (typeof syncIterator === 'function') return { iterator: syncIterator.call(source), sync: true };
  throw argTypeError('source', 'an iterable or async iterable', source);
}

/**
 * Feeds a transform with the items of `source`, through `feed` (honouring
 * 'drain'), while yielding what the transform produces. `write(null, final)`
 * asks an encoder for a sync. A failure on either side ends both. Leaving the
 * loop early destroys the transform, destroys a Node stream source and
 * returns the source's iterator, without waiting for either: a source that is
 * idle (a quiet socket) never holds up the consumer's `break`.
 */
async function* drive<T, S>(
  stream: Duplex & { sync?: (options: { final: boolean }) => void },
  source: AsyncIterable<S> | Iterable<S>,
  feed: (item: S, write: (item: unknown, final?: boolean) => Promise<void>) => Promise<void>,
): AsyncGenerator<T, void, undefined> {
  const { iterator, sync } = iteratorOf(source);
  let sourceDone = false; // the source ended or threw: nothing to return
  const drained = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
    });
  const write = async (item: unknown, final = false): Promise<void> => {
    if (stream.destroyed) throw new Error('stopped');
    if (item === null) stream.sync!({ final });
    else if (!stream.write(item)) await drained();
  };
  const feedAll = async (): Promise<void> => {
    for (;;) {
      let step: IteratorResult<S>;
      let value: S;
      try {
        step = await iterator.next();
        if (step.done === true) break;
        value = sync ? await step.value : step.value; // a sync iterable of promises, as for-await allows
      } catch (err) {
        sourceDone = true;
        throw err;
      }
      await feed(value, write);
    }
    sourceDone = true;
  };
  void feedAll().then(
    () => {
      if (!stream.destroyed) stream.end();
    },
    (err: unknown) => {
      if (!stream.destroyed) stream.destroy(err as Error);
    },
  );
  try {
    for await (const out of stream) yield out as T;
  } finally {
    if (!stream.writableFinished) stream.destroy();
    if (!sourceDone) {
      // A stream source (a socket, a file) is destroyed, as for-await and pipeline() do.
      const readable = source as { destroy?: unknown; readable?: unknown };
      if (typeof readable.destroy === 'function' && typeof readable.readable === 'boolean') (readable.destroy as () => void).call(source);
      // Fire and forget: an async generator runs its cleanup once its pending step settles.
      if (typeof iterator.return === 'function') {
        Promise.resolve()
          .then(() => iterator.return!())
          .catch(() => undefined);
      }
    }
  }
}
