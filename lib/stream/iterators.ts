import { Buffer } from 'node:buffer';
import { decodeRecordsWith, encodeRoundsWith, type EncodeRoundsOption, type RoundItem, type StatsHolder, type WithStats } from '../core/generators.js';
import type { DecodedPage, XbzrleDecodeStreamOptions } from './decode-stream.js';
import type { XbzrleEncodeStreamOptions } from './encode-stream.js';

export type { RoundItem, StatsHolder, WithStats };

const allocBuffer = (size: number): Uint8Array => Buffer.allocUnsafe(size);
const asBuffer = (bytes: Uint8Array): Uint8Array => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);

/** Options of {@link encodeRounds}: the encoder stream's, and `reuseChunks`. */
export interface EncodeRoundsOptions extends XbzrleEncodeStreamOptions, EncodeRoundsOption {}

/**
 * Encodes page records into a RAM record stream without stream classes:
 * yields the output chunks (`Buffer`s); returns the encoder's statistics
 * (also readable as `.stats` on the generator at any time). Backpressure
 * holds: the source is read only as fast as the chunks are consumed. Leaving
 * the loop early (`break`) stops at once and returns the source's iterator.
 *
 * @param source - records, rounds (arrays of records) and `'sync'` markers
 * @param options - as {@link XbzrleEncodeStream} (the high-water marks do not apply), and
 *   `reuseChunks` (see {@link EncodeRoundsOption.reuseChunks}: each chunk valid until the next is asked for)
 * @throws XbzrleError as the encoder does (e.g. `ERR_INVALID_RECORD`), or what the source throws
 *
 * @example
 * ```ts
 * for await (const chunk of encodeRounds([round1, round2])) socket.write(chunk)
 * // Writing each chunk before taking the next: the output's memory can be reused.
 * for await (const chunk of encodeRounds(rounds, { reuseChunks: true })) await file.write(chunk)
 * ```
 */
export function encodeRounds(source: AsyncIterable<RoundItem> | Iterable<RoundItem>, options?: EncodeRoundsOptions): WithStats<Uint8Array> {
  return encodeRoundsWith(source, options, allocBuffer, asBuffer);
}

/**
 * Decodes a RAM record stream without stream classes: yields a
 * {@link DecodedPage} per page record; returns the decoder's statistics
 * (also readable as `.stats` on the generator at any time). Leaving the
 * loop early (`break`) stops at once and destroys a Node stream source (as
 * `for await` over it would).
 *
 * @param source - byte chunks, split anywhere
 * @param options - as {@link XbzrleDecodeStream} (the high-water marks do not apply)
 * @throws XbzrleError on malformed input, as the decoder does
 *
 * @example
 * ```ts
 * for await (const page of decodeRecords(fs.createReadStream('rounds.xs'))) use(page)
 * ```
 */
export function decodeRecords(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: XbzrleDecodeStreamOptions): WithStats<DecodedPage> {
  return decodeRecordsWith<DecodedPage>(source, options, allocBuffer);
}
