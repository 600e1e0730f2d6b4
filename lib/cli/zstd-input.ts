import { Readable } from 'node:stream';

/** Corrupt or truncated zstd input. */
export class ZstdInputError extends Error {}

/**
 * Compressed bytes handed to the decoder at a time. Output is taken (and the
 * reader waited for) after each piece, so memory stays bounded even for input
 * that expands enormously (zstd can turn 3 bytes into a 128 KiB block: 1 KiB
 * can give at most ~43 MiB, and real data far less).
 */
const PIECE = 1024;

/**
 * `source` decompressed as zstd (`fzstd`, a streaming decoder in JavaScript:
 * Node 20's zlib has no zstd), yielding only as fast as the reader takes it.
 * Corrupt input fails the stream with a {@link ZstdInputError}.
 */
export function zstdDecompressed(source: Readable): Readable {
  const out: Uint8Array[] = [];
  async function* decompress(): AsyncGenerator<Uint8Array> {
    // Loaded here, for zstd input only (every command's start would otherwise compile it).
    const { Decompress } = await import('fzstd');
    const decoder = new Decompress((data) => {
      out.push(data);
    });
    const push = (piece: Uint8Array, final: boolean): void => {
      try {
        decoder.push(piece, final);
      } catch (err) {
        throw new ZstdInputError(`zstd-compressed input is corrupt or truncated (${err instanceof Error ? err.message : String(err)})`);
      }
    };
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      for (let at = 0; at < chunk.length; at += PIECE) {
        push(chunk.subarray(at, at + PIECE), false);
        while (out.length > 0) yield out.shift()!;
      }
    }
    push(new Uint8Array(0), true);
    while (out.length > 0) yield out.shift()!;
  }
  return readableOver(decompress(), source);
}

/**
 * A byte stream yielding what `gen` yields. Destroying it destroys `source`
 * too at once: the generator may be waiting on a read from `source` (stdin,
 * a pipe) that would otherwise keep the process alive until the writer goes.
 */
export function readableOver(gen: AsyncGenerator<Uint8Array>, source: Readable): Readable {
  const stream = Readable.from(gen, { objectMode: false });
  const destroy = stream._destroy.bind(stream);
  stream._destroy = (err, callback) => {
    source.destroy();
    destroy(err, callback);
  };
  return stream;
}
