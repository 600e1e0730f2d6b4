import { Transform, type TransformCallback } from 'node:stream';
import { Decompress } from 'fzstd';

/**
 * A stream that decompresses zstd (`fzstd`, a streaming decoder in
 * JavaScript: Node 20's zlib has no zstd), for compressed inputs read as
 * they are. Corrupt input fails the stream with an error saying so.
 */
export function createZstdDecompress(): Transform {
  let decoder: Decompress;
  const stream = new Transform({
    transform(chunk: Uint8Array, _e: BufferEncoding, cb: TransformCallback) {
      try {
        decoder.push(chunk);
        cb();
      } catch (err) {
        cb(corrupt(err));
      }
    },
    flush(cb: TransformCallback) {
      try {
        decoder.push(new Uint8Array(0), true);
        cb();
      } catch (err) {
        cb(corrupt(err));
      }
    },
  });
  decoder = new Decompress((data) => {
    // fzstd reuses no buffers it hands out, so the chunk can go downstream as it is.
    stream.push(data);
  });
  return stream;
}

/** Corrupt or truncated zstd input. */
export class ZstdInputError extends Error {}

function corrupt(err: unknown): Error {
  return new ZstdInputError(`zstd-compressed input is corrupt or truncated (${err instanceof Error ? err.message : String(err)})`);
}
