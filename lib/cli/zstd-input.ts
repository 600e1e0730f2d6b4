import { Readable } from 'node:stream';
import type { Hasher } from '../delta/hash.js';
import { ZstdFrameError, ZstdFrameWalker, type ZstdFrameHeader } from './zstd-frames.js';

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
 * Largest window a frame may ask for: 8 MiB, what `zstd -1` to `-19` write.
 * The decoder keeps the window in memory and moves all of it once per block,
 * so a larger one costs memory and time out of proportion to the output;
 * frames written with `--long` or `--ultra` are refused with a hint to
 * decompress them first.
 */
export const ZSTD_MAX_WINDOW = 8 << 20;
/**
 * Bound on the decoder's work: the window bytes it allocates and moves (a
 * window per frame, and all of it again after each block) may reach this many
 * times the bytes it put out, plus {@link WORK_ALLOWANCE} (a second or two of
 * moves here). Real zstd output of large data (128 KiB blocks, windows up to
 * 8 MiB) needs at most 64 per byte; a file appended to frame by frame (each
 * frame with its level's full window, as `zstd` writes from a pipe) passes up
 * to ~250 frames at `-19` and ~1,000 at `-3`; a small hostile file of tiny
 * frames or blocks under large windows is refused instead of taking minutes.
 */
const WORK_PER_BYTE = 128;
const WORK_ALLOWANCE = 4 * 1024 * 1024 * 1024;

/**
 * `source` decompressed as zstd (`fzstd`, a streaming decoder in JavaScript:
 * Node 20's zlib has no zstd), yielding only as fast as the reader takes it.
 * The frames' structure is walked beside the decoder ({@link ZstdFrameWalker}):
 * each frame's window is checked before the decoder sees its header, each
 * frame's content checksum (when it has one) is verified as the frame ends,
 * skippable frames are skipped, and the decoder's work stays in proportion to
 * its output. Corrupt, truncated or refused input fails the stream with a
 * {@link ZstdInputError}.
 */
export function zstdDecompressed(source: Readable): Readable {
  const out: Uint8Array[] = [];
  async function* decompress(): AsyncGenerator<Uint8Array> {
    // Loaded here, for zstd input only (every command's start would otherwise compile them).
    const [{ Decompress }, hasher] = await Promise.all([import('fzstd'), import('../delta/hash.js').then((m) => m.loadHasher())]);
    let decoder: InstanceType<typeof Decompress> | null = null;
    let hash: ReturnType<Hasher['create']> | null = null;
    let frame: ZstdFrameHeader | null = null;
    let produced = 0;
    let frameOut = 0;
    let work = 0;
    let frames = 0;
    const spend = (bytes: number, at: number): void => {
      work += bytes;
      if (work > WORK_PER_BYTE * produced + WORK_ALLOWANCE) {
        throw new ZstdInputError(`zstd-compressed input is refused at the frame at byte ${at}: its frames and blocks are too small for their windows (${frames} frames so far; this reader allocates each frame's window and moves all of it after every block); decompress it first, e.g. zstd -dc FILE | xbzrle ...`);
      }
    };
    const ondata = (data: Uint8Array, final?: boolean): void => {
      if (final === true && data.length === 0) return; // (the end of a frame, no block)
      // A block: the decoder moves its whole window after it.
      produced += data.length;
      frameOut += data.length;
      spend(frame!.window, frame!.at);
      hash?.update(data);
      out.push(data);
    };
    const push = (piece: Uint8Array, final: boolean): void => {
      try {
        decoder!.push(piece, final);
      } catch (err) {
        if (err instanceof ZstdInputError) throw err;
        throw new ZstdInputError(`zstd-compressed input is corrupt or truncated (${err instanceof Error ? err.message : String(err)})`);
      }
    };
    const walker = new ZstdFrameWalker(
      {
        start(header) {
          frame = header;
          frames++;
          frameOut = 0;
          spend(header.window, header.at); // its window, allocated and cleared
          decoder = new Decompress(ondata);
          hash = header.checksum ? hasher.create() : null;
        },
        data(bytes, inFrame) {
          if (inFrame) push(bytes, false);
        },
        end(checksum) {
          push(new Uint8Array(0), true);
          const at = frame!.at;
          const declared = frame!.contentSize;
          if (declared >= 0 && frameOut !== declared) {
            throw new ZstdInputError(`zstd-compressed input is corrupt: the frame at byte ${at} holds ${frameOut} bytes, not the ${declared} its header declares`);
          }
          frame = null;
          decoder = null;
          if (checksum >= 0 && Number(hash!.digest() & 0xffffffffn) !== checksum) {
            throw new ZstdInputError(`zstd-compressed input is corrupt: the content of the frame at byte ${at} does not match its checksum`);
          }
          hash = null;
        },
      },
      ZSTD_MAX_WINDOW,
    );
    /** Runs the walker (`piece`, or the end of the input when undefined), its structural errors as ZstdInputErrors. */
    const walk = (piece?: Uint8Array): void => {
      try {
        if (piece === undefined) walker.finish();
        else walker.walk(piece);
      } catch (err) {
        if (err instanceof ZstdFrameError) throw new ZstdInputError(`zstd-compressed input is ${err.refused ? 'refused' : 'corrupt or truncated'}: ${err.message}`);
        throw err;
      }
    };
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      for (let at = 0; at < chunk.length; at += PIECE) {
        walk(chunk.subarray(at, at + PIECE));
        while (out.length > 0) yield out.shift()!;
      }
    }
    walk();
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
