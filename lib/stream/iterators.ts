import type { Duplex } from 'node:stream';
import type { XbzrleStats } from '../stats.js';
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
 * yields the output chunks; returns the encoder's statistics. Backpressure
 * holds: the source is read only as fast as the chunks are consumed.
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
export async function* encodeRounds(
  source: AsyncIterable<RoundItem> | Iterable<RoundItem>,
  options?: XbzrleEncodeStreamOptions,
): AsyncGenerator<Uint8Array, XbzrleStats, undefined> {
  const enc = new XbzrleEncodeStream(options);
  yield* drive<Uint8Array>(enc, async (write) => {
    for await (const item of source as AsyncIterable<RoundItem>) {
      if (item === 'sync' || item === 'final') await write(null, item === 'final');
      else if (Array.isArray(item)) {
        for (const record of item as readonly PageRecord[]) await write(record);
        await write(null, false);
      } else await write(item);
    }
  });
  return enc.stats;
}

/**
 * Decodes a RAM record stream without stream classes: yields a
 * {@link DecodedPage} per page record; returns the decoder's statistics.
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
export async function* decodeRecords(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options?: XbzrleDecodeStreamOptions,
): AsyncGenerator<DecodedPage, XbzrleStats, undefined> {
  const dec = new XbzrleDecodeStream(options);
  yield* drive<DecodedPage>(dec, async (write) => {
    for await (const chunk of source as AsyncIterable<Uint8Array>) await write(chunk);
  });
  return dec.stats;
}

/**
 * Feeds a transform from `feed` (honouring 'drain') while yielding what it
 * produces. `write(null, final)` asks an encoder for a sync. A failure on
 * either side ends both; leaving the loop early destroys the transform.
 */
async function* drive<T>(
  stream: Duplex & { sync?: (options: { final: boolean }) => void },
  feed: (write: (item: unknown, final?: boolean) => Promise<void>) => Promise<void>,
): AsyncGenerator<T, void, undefined> {
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
  const feeding = feed(write).then(
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
    await feeding;
  }
}
