import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RecordWriter, XbzrleDecodeStream, XbzrleEncodeStream, type DecodedPage, type PageRecord, type XbzrleDecodeStreamOptions, type XbzrleEncodeStreamOptions } from '../../lib/index.js';
import { concat } from './bytes.js';

/** A round: records to write, then a sync (unless it is the last round, which ends the stream). */
export type Round = PageRecord[];

/** Runs rounds through an encoder and returns the whole output and the encoder. */
export async function encodeRounds(rounds: Round[], options?: XbzrleEncodeStreamOptions): Promise<{ bytes: Uint8Array; enc: XbzrleEncodeStream; chunks: Uint8Array[] }> {
  const enc = new XbzrleEncodeStream(options);
  const chunks: Uint8Array[] = [];
  const done = pipeline(
    enc,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  rounds.forEach((round, i) => {
    for (const r of round) enc.write(r);
    if (i < rounds.length - 1) enc.sync();
  });
  enc.end();
  await done;
  return { bytes: concat(chunks), enc, chunks };
}

/** Decodes chunks through a decoder; returns the pages emitted and the decoder. */
export async function decodeChunks(chunks: Uint8Array[], options?: XbzrleDecodeStreamOptions): Promise<{ pages: DecodedPage[]; dec: XbzrleDecodeStream }> {
  const dec = new XbzrleDecodeStream(options);
  const pages: DecodedPage[] = [];
  await pipeline(
    Readable.from(chunks, { objectMode: false }),
    dec,
    new Writable({
      objectMode: true,
      write(p: DecodedPage, _e, cb) {
        pages.push(p);
        cb();
      },
    }),
  );
  return { pages, dec };
}

/** Builds a RAM record stream with the library's writer (4 KiB pages unless told). */
export function buildRecords(fn: (w: RecordWriter) => void, pageSize = 4096): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new RecordWriter({ pageSize }, (c) => chunks.push(c));
  fn(w);
  w.flush();
  return concat(chunks);
}

/**
 * Writes `bytes` to `dec` in pieces of `sizes()` bytes (at most `room`)
 * through ONE buffer, filled with 0xa5 as soon as each write's callback ran
 * (the decoder is done with it then), and ends it. A decoder that kept a view
 * of its input past the callback writes 0xa5 somewhere.
 */
export async function writeThroughOneBuffer(dec: XbzrleDecodeStream, bytes: Uint8Array, sizes: () => number, room: number): Promise<void> {
  const buf = new Uint8Array(room);
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(sizes(), bytes.length - at, room);
    buf.set(bytes.subarray(at, at + n));
    await new Promise<void>((resolve, reject) => dec.write(buf.subarray(0, n), (err) => (err ? reject(err) : resolve())));
    buf.fill(0xa5);
    at += n;
  }
  await new Promise<void>((resolve, reject) => {
    dec.on('error', reject);
    dec.end(resolve);
  });
}

/**
 * `bytes` in `size`-byte chunks through ONE buffer, filled with 0xa5 when the
 * next chunk is asked for: a reader that kept a view of a chunk past that
 * point reads 0xa5.
 */
export async function* throughOneBuffer(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const buf = new Uint8Array(size);
  for (let at = 0; at < bytes.length; at += size) {
    const n = Math.min(size, bytes.length - at);
    buf.set(bytes.subarray(at, at + n));
    yield buf.subarray(0, n);
    buf.fill(0xa5);
  }
}
