import { stat } from 'node:fs/promises';
import { Buffer } from 'node:buffer';
import { EncoderCore } from '../../core/encoder.js';
import { reusedSlabs } from '../../core/reused-slabs.js';
import { MAX_CACHE_SIZE } from '../../cache/page-cache.js';
import { checkCacheSize, plural, sizeText, type CommonOptions } from '../args.js';
import { CliError, namedError } from '../errors.js';
import { exactChunks, openInput, openOutput, refuseCompressedFile, type OutputSink } from '../files.js';
import { CliContext } from '../io.js';
import { readImageRuns } from '../image-reader.js';
import { RoundCheck } from '../round-check.js';
import { formatBytes, Progress } from '../progress.js';

export const ENCODE_HELP = `usage: xbzrle encode [IMAGE...] [-o OUT] [--image-size N] [options]

Stream successive full images of one memory as one delta stream: round k is
sent against round k-1 through the page cache, as a live migration would.
IMAGEs are files, one round each; without IMAGE (or with '-') stdin holds the
rounds back to back, each --image-size bytes. Decode with: xbzrle decode.
Image files are read twice (for their round, then beside the next image, whose
round is sent against them) instead of being held in the cache's memory; a
page read differently the second time (an image written meanwhile) is sent
whole.

options:
  -o, --output OUT     write here (default: stdout, refused on a terminal)
      --image-size N   bytes per round (required for stdin; default: the first
                       file's size); a multiple of the page size; k/M/G suffixes
      --cache-size N   page cache size (default: the image size, at most 4G, or
                       1G for rounds from stdin, which are held in it; a cache
                       smaller than the image resends pages whole)
      --block NAME     block name (default: ram)
      --page-size N    page size (default: 4096)
      --threads N      threads to encode on (default: the cores, at most 8);
                       the output is the same for any N
  -f, --force          overwrite OUT; write binary to a terminal
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

/** The largest default page cache for rounds from stdin (held in it): the image size up to this (1 GiB). */
export const DEFAULT_ENCODE_CACHE_LIMIT = 1 << 30;

/** Record size: runs of pages handed to the encoder. */
const RUN = 2 << 20;

export async function encode(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  const images = positionals.length === 0 ? ['-'] : positionals;
  if (images.filter((p) => p === '-').length > 1) throw new CliError('stdin can be given only once');
  const ps = o.pageSize;
  let size = o.imageSize;
  const sizes: (number | undefined)[] = [];
  for (const path of images) {
    if (path === '-') {
      sizes.push(undefined);
      continue;
    }
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw namedError(path, err);
    }
    if (st.isDirectory()) throw new CliError(`${path}: is a directory`);
    if (!st.isFile()) throw new CliError(`${path}: not a regular file (to encode from a pipe, give it as stdin with --image-size N)`);
    await refuseCompressedFile(path);
    sizes.push(st.size);
    size ??= st.size;
    if (st.size !== size) throw new CliError(`${path}: size ${st.size} differs from the image size ${size}`);
  }
  if (size === undefined) throw new CliError('encode from stdin needs --image-size N', true);
  if (size % ps !== 0) throw new CliError(`image size ${size} is not a multiple of the page size ${ps}`);
  const block = o.block ?? 'ram';
  // The cache holds a whole image by default: with a smaller one, pages that fell out of it
  // are sent whole every round. Its slots are a power of two (QEMU's rule). Rounds that are
  // all files are read again instead of cached (see below): the cache then costs only its
  // bookkeeping (17 bytes a page, and 8 for the check of the second reads), and holds
  // images up to its largest size; rounds from stdin are cached, up to 1 GiB by default.
  const check = images.every((p) => p !== '-') ? RoundCheck.make(size / ps, ps, RUN / ps) : null;
  const reread = check !== null;
  const limit = reread ? MAX_CACHE_SIZE : DEFAULT_ENCODE_CACHE_LIMIT;
  const cacheSize = o.cacheSizeSet ? checkCacheSize(o, MAX_CACHE_SIZE, 'the page cache', ps) : Math.min(roundUpPow2(Math.max(size, ps)), limit);
  const holds = powerOfTwoFloor(Math.floor(cacheSize / ps)) * ps;
  if (holds < size && !o.quiet) {
    const enough = Math.min(MAX_CACHE_SIZE, roundUpPow2(size));
    ctx.io.stderr.write(
      `xbzrle: warning: the page cache holds ${formatBytes(holds)}, less than the image (${formatBytes(size)}): ` +
        `pages that fall out of it are sent whole${holds < enough ? ` (--cache-size ${sizeText(enough)} holds it)` : ''}\n`,
    );
  }
  const total = sizes.every((s) => s !== undefined) ? sizes.reduce<number>((a, b) => a + b!, 0) : undefined;
  let out: OutputSink;
  try {
    out = await openOutput(ctx, o.output, o.force, images);
  } catch (err) {
    check?.dispose(); // kernel memory, which the garbage collector never takes back
    throw err;
  }
  const progress = new Progress('encode', total, o.quiet ? false : o.progress, ctx.io);
  // The encoder core driven directly: each output chunk is written (one write in flight
  // while the next is encoded) and its slab reused once written, so a long encode
  // touches a few slabs of fresh memory instead of its whole output.
  const slabs = outputSlabs(out.releasesChunks);
  let core: EncoderCore | null = null;
  let inFlight: Promise<void> = Promise.resolve();
  const drain = async (core: EncoderCore): Promise<void> => {
    for (let chunk = core.next(); chunk !== undefined; chunk = core.next()) {
      await inFlight;
      const written = chunk;
      inFlight = out.write(written).then(() => slabs.done(written));
      inFlight.catch(() => undefined); // awaited before the next write or at the end
    }
  };
  // Every round a file: each is read again beside the next one, whose round is sent
  // against it, instead of being kept in the cache (feedRound): the cache's memory is
  // never touched, which is most of the time an image-sized cache costs.
  let rounds = 0;
  let done = 0;
  let delivered = false;
  try {
    // Made in here: its writer takes a first slab (kernel memory) before its own checks may throw.
    // One image file is one round, all misses, encoded on this thread: workers would never get a
    // page, and their start took the other core from the reads (512 MiB: 309 → 350 ms on 2 cores).
    const threads = images.length === 1 && images[0] !== '-' ? 1 : o.threads;
    core = new EncoderCore({ pageSize: ps, cacheSize, blocks: [{ id: block, length: size }], chunkSize: 1 << 20, threads, previousRounds: reread }, slabs.alloc, slabs.release);
    for (const [index, path] of images.entries()) {
      // Files are read straight into kernel memory, the next run while this one is encoded; stdin as it comes.
      const input = path === '-' ? await openInput(ctx, path, RUN, 'refuse') : { name: path, stream: null };
      const before = reread && index > 0 ? images[index - 1]! : null;
      const pieces = input.stream === null ? pairedRuns(path, before, RUN, ps) : pairsOf(exactChunks(input.stream, RUN));
      let inRound = 0;
      for await (const [piece, previous] of pieces) {
        let at = 0;
        while (at < piece.length) {
          const n = Math.min(piece.length - at, size - inRound);
          if (n % ps !== 0) throw new CliError(`${input.name}: ends in the middle of a page (${inRound + n} bytes into round ${rounds + 1})`);
          // Encoded before the next piece is read: the reader may then reuse the piece's buffer.
          const record = { block, offset: inRound, data: piece.subarray(at, at + n) };
          if (check !== null) {
            const before = previous === null ? null : previous.subarray(at, at + n);
            // Pages read differently the second time go whole (their cache entries dropped).
            core.feedRound(record, before, check.pass(record.data, before, inRound / ps, index === images.length - 1));
          } else core.feed(record);
          await drain(core);
          at += n;
          inRound += n;
          done += n;
          progress.update(done);
          if (inRound === size) {
            rounds++;
            inRound = 0;
            core.sync(false);
            await drain(core);
          }
        }
      }
      if (inRound !== 0) throw new CliError(`${input.name}: ends ${inRound} bytes into a round of ${plural(size, 'byte')}`);
      if (path !== '-' && rounds === 0) throw new CliError(`${input.name}: empty`);
    }
    if (rounds === 0) throw new CliError('no image data on stdin');
    core.end();
    await drain(core);
    await inFlight;
    delivered = true;
    await out.commit();
    progress.finish();
    if (!o.quiet && out.name !== 'stdout') {
      const s = core.currentStats();
      ctx.io.stderr.write(
        `xbzrle: ${out.name}: ${plural(rounds, 'round')} of ${formatBytes(size)} as ${formatBytes(s.transferred)} ` +
          `(XBZRLE ${s.records.XBZRLE}, PAGE ${s.records.PAGE}, ZERO ${s.records.ZERO}, unchanged ${s.skipped})\n`,
      );
    }
  } catch (err) {
    progress.finish();
    await inFlight.catch(() => undefined);
    await out.abort();
    throw err;
  } finally {
    core?.dispose(delivered);
    check?.dispose();
    slabs.dispose(); // every write is done: awaited above on both paths
  }
}

/**
 * @internal The runs of an image file, each with the same run of the file before it
 * (`before`; null: none), both read ahead. A `before` shorter or longer
 * than the file changed while it was being encoded.
 */
export async function* pairedRuns(path: string, before: string | null, run: number, ps: number): AsyncGenerator<[Uint8Array, Uint8Array | null], void, undefined> {
  const runs = readImageRuns(path, run, ps);
  if (before === null) {
    for await (const piece of runs) yield [piece, null];
    return;
  }
  const earlier = readImageRuns(before, run, ps);
  const changed = (): CliError => new CliError(`${before}: changed while it was being encoded (its size is no longer ${path}'s)`);
  try {
    for (;;) {
      const [a, b] = await Promise.all([runs.next(), earlier.next()]);
      if (a.done === true) {
        if (b.done !== true) throw changed();
        return;
      }
      if (b.done === true || b.value.length !== a.value.length) throw changed();
      yield [a.value, b.value];
    }
  } finally {
    await Promise.allSettled([runs.return(undefined), earlier.return(undefined)]);
  }
}

async function* pairsOf(pieces: AsyncIterable<Uint8Array>): AsyncGenerator<[Uint8Array, null], void, undefined> {
  for await (const piece of pieces) yield [piece, null];
}

function roundUpPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function powerOfTwoFloor(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/**
 * @internal The encoder's output slabs: reused once written (`reusedSlabs`,
 * in the kernel's memory) through an output done with a chunk once written
 * (a file); through one that may keep its chunks (a stream), new ones each
 * time, left to the garbage collector. `held()`: slabs the pool keeps (for
 * tests); `dispose()` gives the kernel's memory back, once no write uses it.
 */
export function outputSlabs(releasesChunks: boolean): {
  alloc: (size: number) => Uint8Array;
  release: ((slab: Uint8Array, used: number) => void) | undefined;
  done: (chunk: Uint8Array) => void;
  held: () => number;
  dispose: () => void;
} {
  if (releasesChunks) return reusedSlabs(true);
  return { alloc: (n) => Buffer.allocUnsafe(n), release: undefined, done: () => undefined, held: () => 0, dispose: () => undefined };
}
