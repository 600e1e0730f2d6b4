/** Deterministic memory-like image pairs for the delta tests (not a test file). */

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

const WORDS = ['kernel', 'page', 'alloc', 'struct', 'return', 'buffer', 'the', 'of', 'process', 'memory'];

/** Fills page `p` of `img` with content of kind `kind` (0 zero, 1 text, 2 pointers, 3 random). */
export function fillPage(img: Uint8Array, p: number, ps: number, kind: number, r: () => number): void {
  const o = p * ps;
  if (kind === 0) {
    img.fill(0, o, o + ps);
    return;
  }
  if (kind === 1) {
    let i = 0;
    while (i < ps) {
      const w = WORDS[Math.floor(r() * WORDS.length)]! + ' ';
      for (let j = 0; j < w.length && i < ps; j++) img[o + i++] = w.charCodeAt(j);
    }
    return;
  }
  if (kind === 2) {
    img.fill(0, o, o + ps);
    for (let i = 0; i < ps; i += 8) {
      if (r() < 0.5) {
        const v = 0x81000000 + Math.floor(r() * 65536) * 64;
        img[o + i] = v & 0xff;
        img[o + i + 1] = (v >>> 8) & 0xff;
        img[o + i + 2] = (v >>> 16) & 0xff;
        img[o + i + 3] = v >>> 24;
        img[o + i + 4] = 0x80;
        img[o + i + 5] = 0x88;
        img[o + i + 6] = 0xff;
        img[o + i + 7] = 0xff;
      }
    }
    return;
  }
  for (let i = 0; i < ps; i++) img[o + i] = Math.floor(r() * 256);
}

/** OLD and NEW (same size unless `newPages` differs) with small edits, rewrites, zeroed, moved and duplicated pages. */
export function makePair(seed: number, pages: number, ps = 4096, newPages = pages): { oldImg: Uint8Array; newImg: Uint8Array } {
  const r = rng(seed);
  const oldImg = new Uint8Array(pages * ps);
  for (let p = 0; p < pages; p++) fillPage(oldImg, p, ps, Math.floor(r() * 4), r);
  const newImg = new Uint8Array(newPages * ps);
  newImg.set(oldImg.subarray(0, Math.min(oldImg.length, newImg.length)));
  for (let p = pages; p < newPages; p++) fillPage(newImg, p, ps, 1 + Math.floor(r() * 3), r);
  const n = Math.max(4, Math.floor(newPages / 20));
  const pick = (): number => Math.floor(r() * newPages);
  for (let k = 0; k < n; k++) {
    // small edit
    const p = pick();
    const at = p * ps + Math.floor(r() * (ps - 8));
    newImg[at] = newImg[at]! ^ 0x5a;
    newImg[at + 5] = newImg[at + 5]! ^ 0x11;
  }
  for (let k = 0; k < n / 2; k++) fillPage(newImg, pick(), ps, 3, r); // rewritten
  for (let k = 0; k < n / 2; k++) fillPage(newImg, pick(), ps, 0, r); // zeroed
  for (let k = 0; k < n / 2; k++) {
    // moved: a non-zero page of OLD copied elsewhere
    const from = Math.floor(r() * pages);
    const to = pick();
    if (from !== to) newImg.set(oldImg.subarray(from * ps, from * ps + ps), to * ps);
  }
  for (let k = 0; k < n / 4; k++) {
    // duplicated new content
    const a = pick();
    const b = pick();
    fillPage(newImg, a, ps, 3, r);
    if (a !== b) newImg.copyWithin(b * ps, a * ps, a * ps + ps);
  }
  return { oldImg, newImg };
}

import { ByteQueue, DeltaApplier, DeltaEncoder, loadHasher, loadZstd, type DeltaEncoderOptions, type DeltaStats } from '../lib/delta/index.js';
import type { FrameWorkers } from '../lib/delta/codec.js';
import { FRAME_HEADER_SIZE, HEADER_SIZE } from '../lib/delta/format.js';
import { readU32 } from '../lib/format/bytes.js';

export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

/** Chunks of `b`: whole, 1-byte, or random sizes from `seed`. */
export function chunked(b: Uint8Array, how: 'whole' | 'bytes' | 'random', seed = 1): AsyncIterable<Uint8Array> {
  const r = rng(seed);
  return (async function* () {
    if (how === 'whole') {
      yield b;
      return;
    }
    for (let p = 0; p < b.length; ) {
      const n = how === 'bytes' ? 1 : 1 + Math.floor(r() * 9000);
      yield b.subarray(p, p + n);
      p += n;
    }
  })();
}

/**
 * A delta encoder of NEW against OLD held in memory (its pages read back from
 * them), writing into `chunks`; `oldPadded` is OLD padded with zeros to whole
 * pages and to NEW's length, `oldEnd` OLD's length in whole pages.
 */
export async function memoryEncoder(
  oldImg: Uint8Array,
  newImg: Uint8Array,
  opts: Partial<DeltaEncoderOptions> = {},
): Promise<{ enc: DeltaEncoder; chunks: Uint8Array[]; oldPadded: Uint8Array; oldEnd: number }> {
  const ps = opts.pageSize ?? 4096;
  const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
  const chunks: Uint8Array[] = [];
  const oldEnd = Math.ceil(oldImg.length / ps) * ps;
  const oldPadded = new Uint8Array(Math.max(oldEnd, newImg.length));
  oldPadded.set(oldImg);
  const enc = DeltaEncoder.create(
    { oldSize: oldImg.length, newSize: newImg.length, ...opts },
    {
      readOld: async (off, into) => void into.set(oldPadded.subarray(off, off + ps)),
      readNew: async (off, into) => void into.set(newImg.subarray(off, off + ps)),
    },
    (c) => chunks.push(c),
    { hasher, compressor },
  );
  return { enc, chunks, oldPadded, oldEnd };
}

/** Encodes NEW against OLD in memory (pre-pass over OLD, steps of `step` bytes). */
export async function encodeInMemory(oldImg: Uint8Array, newImg: Uint8Array, opts: Partial<DeltaEncoderOptions> = {}, step = 64 * 1024): Promise<{ delta: Uint8Array; stats: DeltaStats }> {
  const { enc, chunks, oldPadded, oldEnd } = await memoryEncoder(oldImg, newImg, opts);
  try {
    enc.indexOld(oldPadded.subarray(0, oldEnd), 0);
    for (let p = 0; p < newImg.length; p += step) {
      const n = Math.min(step, newImg.length - p);
      await enc.push(oldPadded.subarray(p, p + n), newImg.subarray(p, p + n), p);
    }
    const stats = enc.end();
    return { delta: concat(chunks), stats };
  } finally {
    enc.dispose();
  }
}

/** Applies `delta` to OLD in memory; the delta arrives in `how` chunks. */
export async function applyInMemory(oldImg: Uint8Array, delta: Uint8Array, how: 'whole' | 'bytes' | 'random' = 'whole', o: { verify?: boolean; pageSize?: number; stepPages?: number } = {}): Promise<{ image: Uint8Array; stats: DeltaStats }> {
  const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
  const a = await DeltaApplier.open(new ByteQueue(chunked(delta, how)), { hasher, compressor }, { verify: o.verify, pageSize: o.pageSize, stepPages: o.stepPages ?? 4 });
  const out = new Uint8Array(a.header.newSize);
  const ps = a.header.pageSize;
  for await (const s of a.steps({
    old: chunked(oldImg, how === 'bytes' ? 'random' : how, 3),
    readOld: async (off, into) => {
      into.fill(0);
      into.set(oldImg.subarray(off, Math.min(off + ps, oldImg.length)));
    },
    readNew: async (off, into) => void into.set(out.subarray(off, off + ps)),
  })) {
    out.set(s.data, s.offset);
  }
  return { image: out, stats: a.stats };
}

/**
 * Encodes NEW against OLD (same length, whole pages) with `workers` doing the
 * frames, in steps of `step` bytes; after each step the frames done go out
 * (`drain(drainLimit)`) and `pause` runs (a worker gets to start). The chunks
 * are kept as handed out (a consumer that holds them) and joined at the end.
 */
export async function encodeWithWorkers(
  oldImg: Uint8Array,
  newImg: Uint8Array,
  workers: FrameWorkers,
  o: { frameSize: number; level?: number; step?: number; drainLimit?: number; pause?: () => Promise<void> },
): Promise<Uint8Array> {
  const ps = 4096;
  const step = o.step ?? 64 * 1024;
  const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
  const chunks: Uint8Array[] = [];
  const enc = DeltaEncoder.create(
    { oldSize: oldImg.length, newSize: newImg.length, frameSize: o.frameSize, ...(o.level === undefined ? {} : { level: o.level }) },
    {
      readOld: async (off, into) => void into.set(oldImg.subarray(off, off + ps)),
      readNew: async (off, into) => void into.set(newImg.subarray(off, off + ps)),
    },
    (c) => chunks.push(c),
    { hasher, compressor, workers },
  );
  try {
    enc.indexOld(oldImg, 0);
    for (let p = 0; p < newImg.length; p += step) {
      await enc.push(oldImg.subarray(p, p + step), newImg.subarray(p, p + step), p);
      await enc.drain(o.drainLimit);
      await o.pause?.();
    }
    await enc.finish();
    return concat(chunks);
  } finally {
    enc.dispose();
  }
}

/** {@link applyInMemory} with `workers` doing the frames (the reader reads them ahead); `pause` runs after each step. */
export async function applyWithWorkers(oldImg: Uint8Array, delta: Uint8Array, workers: FrameWorkers, how: 'whole' | 'random' = 'whole', pause?: () => Promise<void>): Promise<Uint8Array> {
  const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
  const a = await DeltaApplier.open(new ByteQueue(chunked(delta, how, 5)), { hasher, compressor, workers }, { stepPages: 4 });
  const out = new Uint8Array(a.header.newSize);
  const ps = a.header.pageSize;
  for await (const s of a.steps({
    old: chunked(oldImg, how, 3),
    readOld: async (off, into) => void into.set(oldImg.subarray(off, off + ps)),
    readNew: async (off, into) => void into.set(out.subarray(off, off + ps)),
  })) {
    out.set(s.data, s.offset);
    await pause?.();
  }
  return out;
}

/** Frame start offsets of a delta in our container format, then the trailer's offset. */
export function frameBounds(delta: Uint8Array): number[] {
  const b: number[] = [];
  let at = HEADER_SIZE;
  while (delta[at] === 1) {
    b.push(at);
    at += FRAME_HEADER_SIZE + readU32(delta, at + 8);
  }
  b.push(at);
  return b;
}
