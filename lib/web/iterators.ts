import { decodeRecordsWith, encodeRoundsWith, type EncodeRoundsOption, type RoundItem, type WithStats } from '../core/generators.js';
import type { DecoderOptions } from '../core/decoder.js';
import type { EncoderOptions } from '../core/encoder.js';
import type { WebDecodedPage } from './streams.js';

/** Options of {@link encodeRounds}: the encoder's, and `reuseChunks`. */
export interface EncodeRoundsOptions extends EncoderOptions, EncodeRoundsOption {}

/**
 * Encodes page records into a RAM record stream without stream classes:
 * yields `Uint8Array` chunks; returns the encoder's statistics (also
 * readable as `.stats` on the generator at any time). The same driver as
 * the Node export, over the same core; the source is read only as fast as
 * chunks are consumed, and leaving the loop early stops at once.
 *
 * @example
 * ```ts
 * for await (const chunk of encodeRounds([round1, round2])) await writer.write(chunk)
 * // Each chunk written before the next is taken: the output's memory can be reused.
 * for await (const chunk of encodeRounds(rounds, { reuseChunks: true })) await writer.write(chunk)
 * ```
 */
export function encodeRounds(source: AsyncIterable<RoundItem> | Iterable<RoundItem>, options?: EncodeRoundsOptions): WithStats<Uint8Array> {
  return encodeRoundsWith(source, options);
}

/**
 * Decodes a RAM record stream without stream classes: yields a
 * {@link WebDecodedPage} per page record; returns the decoder's statistics
 * (also as `.stats`).
 *
 * @example
 * ```ts
 * for await (const page of decodeRecords(response.body)) draw(page)
 * ```
 */
export function decodeRecords(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: DecoderOptions): WithStats<WebDecodedPage> {
  return decodeRecordsWith<WebDecodedPage>(source, options);
}
