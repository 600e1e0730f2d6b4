import type { EncoderCore } from '../../lib/core/encoder.js';
import { allocPages } from '../../lib/index.js';
import { concat, rng } from './bytes.js';

/**
 * `count` rounds of an image of `pages` pages that changes like memory: each
 * round, from the one before (round 0 from zeros), a page is zeroed (1 in 10),
 * rewritten with random bytes (1 in 10: overflows), given 1-6 small edits
 * (4 in 10) or left as it was. In `allocPages` memory when `inKernel`.
 */
export function memoryRounds(pages: number, count: number, seed: number, inKernel: boolean, pageSize = 4096): Uint8Array[] {
  const float = rng(seed);
  const rand = (): number => (float() * 4294967296) >>> 0;
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(pages * pageSize);
  for (let r = 0; r < count; r++) {
    const img = inKernel ? allocPages(pages, pageSize) : new Uint8Array(pages * pageSize);
    img.set(prev);
    for (let p = 0; p < pages; p++) {
      const kind = rand() % 10;
      const at = p * pageSize;
      if (kind === 0) img.fill(0, at, at + pageSize);
      else if (kind === 1) for (let i = 0; i < pageSize; i++) img[at + i] = rand() & 0xff;
      else if (kind < 6) for (let e = 0; e < 1 + (rand() % 6); e++) img[at + (rand() % pageSize)] = rand() & 0xff;
    }
    out.push(img);
    prev = img;
  }
  return out;
}

/** How {@link encodeImages} feeds an encoder core. */
export interface FeedPlan {
  pageSize: number;
  /** Pages per record. */
  run: number;
  /** The last round ends with sync(true) (QEMU's final stage). */
  final: boolean;
  /** Every record through feedRound, with the previous round's pages given again. */
  reread: boolean;
}

/**
 * Feeds `images` to `core` as rounds (records of `run` pages, a sync after each
 * round), ends it, and returns its output, the lengths of its chunks, and
 * its statistics (the rate zeroed: it depends on time). The caller disposes
 * of the core.
 */
export function encodeImages(core: EncoderCore, images: readonly Uint8Array[], o: FeedPlan): CoreOutput {
  const ps = o.pageSize;
  const size = images[0]!.length;
  const chunks: Uint8Array[] = [];
  const drain = (): void => drainCore(core, chunks);
  images.forEach((img, r) => {
    for (let at = 0; at < size; at += o.run * ps) {
      const end = Math.min(size, at + o.run * ps);
      const record = { block: 'ram', offset: at, data: img.subarray(at, end) };
      if (o.reread) core.feedRound(record, r === 0 ? null : images[r - 1]!.subarray(at, end));
      else core.feed(record);
      drain();
    }
    core.sync(o.final && r === images.length - 1);
    drain();
  });
  core.end();
  drain();
  return coreOutput(core, chunks);
}

/** An encoder core's output: its bytes, the lengths of its chunks, its statistics (the rate zeroed: it depends on time). */
export interface CoreOutput {
  bytes: Uint8Array;
  chunks: number[];
  stats: unknown;
}

/** Copies every chunk `core.next()` has ready into `chunks`. */
export function drainCore(core: EncoderCore, chunks: Uint8Array[]): void {
  for (let c = core.next(); c !== undefined; c = core.next()) chunks.push(c.slice());
}

/** The {@link CoreOutput} of `core`, whose chunks were collected in `chunks`. */
export function coreOutput(core: EncoderCore, chunks: readonly Uint8Array[]): CoreOutput {
  const s = core.currentStats().toJSON();
  return { bytes: concat(chunks), chunks: chunks.map((c) => c.length), stats: { ...s, ram: { ...s.ram, 'pages-per-second': 0 } } };
}
