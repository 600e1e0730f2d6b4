/**
 * A compressed frame whose zstd header lies about its size is refused before
 * zstd sees it. The frame checksums are not keyed, so a hostile delta can
 * carry any zstd bytes with matching checksums; a zstd frame declaring
 * gigabytes used to make the decompressor reserve that much memory (once per
 * frame thread) before the length check refused it. Each case here is
 * resealed (checksums recomputed) so that only the zstd header is wrong: on
 * one thread, with frame workers (which must never be handed the frame), and
 * through `patch` of a chain (the chain reader has its own frame path).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadHasher, loadZstd, type FrameCompressor, type Hasher } from '../lib/delta/index.js';
import type { FrameWorkers } from '../lib/delta/codec.js';
import { encodeFrameHeader, FRAME_HEADER_SIZE } from '../lib/delta/format.js';
import { XbzrleError } from '../lib/errors.js';
import { readU32 } from '../lib/format/bytes.js';
import { applyInMemory, applyWithWorkers, encodeInMemory, fillPage, frameBounds, makePair, rng } from './delta-images.js';
import { sameBytes } from './helpers/bytes.js';
import { runMain, scratchFolders } from './helpers/cli.js';

let hasher: Hasher;
let zstd: FrameCompressor;

beforeAll(async () => {
  [hasher, zstd] = await Promise.all([loadHasher(), loadZstd()]);
});

/** `n` bytes of `v`, little-endian (zstd's byte order). */
function le(v: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(v % 256);
    v = Math.floor(v / 256);
  }
  return out;
}

/**
 * The zstd frame `stored` with its frame header rewritten: single segment, a
 * content-size field of `sizeBytes` bytes holding `declared` (the field's
 * +256 bias applied for 2 bytes), the blocks after it kept.
 */
function redeclare(stored: Uint8Array, declared: number, sizeBytes: 2 | 4 | 8): Uint8Array {
  const descriptor = stored[4]!;
  const single = (descriptor >> 5) & 1;
  const flag = descriptor >> 6;
  const dictAt = 5 + (single === 1 ? 0 : 1); // after the window byte, when there is one
  const dictBytes = [0, 1, 2, 4][descriptor & 3]!;
  const blocksAt = dictAt + dictBytes + (flag === 0 ? single : 1 << flag);
  const sizeFlag = { 2: 1, 4: 2, 8: 3 }[sizeBytes];
  // Single segment (the window is the content size: no window byte); the checksum and dictionary flags kept.
  return Uint8Array.from([
    ...stored.subarray(0, 4),
    (sizeFlag << 6) | 0x20 | (descriptor & 0x07),
    ...stored.subarray(dictAt, dictAt + dictBytes),
    ...le(sizeBytes === 2 ? declared - 256 : declared, sizeBytes),
    ...stored.subarray(blocksAt),
  ]);
}

/** `delta` with frame `f`'s payload replaced by `stored`, both checksums recomputed; the frames after it follow as they were. */
function withPayload(delta: Uint8Array, f: number, stored: Uint8Array): Uint8Array {
  const bounds = frameBounds(delta);
  const at = bounds[f]!;
  const end = at + FRAME_HEADER_SIZE + readU32(delta, at + 8);
  const head = encodeFrameHeader(f, delta[at + 1]!, stored, readU32(delta, at + 12), hasher);
  const out = new Uint8Array(at + FRAME_HEADER_SIZE + stored.length + (delta.length - end));
  out.set(delta.subarray(0, at));
  out.set(head, at);
  out.set(stored, at + FRAME_HEADER_SIZE);
  out.set(delta.subarray(end), at + FRAME_HEADER_SIZE + stored.length);
  return out;
}

/** makePair's images with a third of NEW's pages refilled with text: compressed frames. */
function textPair(seed: number, pages: number): { oldImg: Uint8Array; newImg: Uint8Array } {
  const p = makePair(seed, pages);
  const r = rng(seed + 1000);
  for (let i = 0; i < pages / 3; i++) fillPage(p.newImg, Math.floor(r() * pages), 4096, 1, r);
  return p;
}

async function errorOf(p: Promise<unknown>): Promise<XbzrleError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(XbzrleError);
    return err as XbzrleError;
  }
  throw new Error('expected an error');
}

describe('a zstd frame that declares another size than its frame header', () => {
  const { oldImg, newImg } = textPair(31, 96);
  let delta: Uint8Array;
  let f = -1;
  let at = 0;
  let stored: Uint8Array;
  let raw = 0;

  beforeAll(async () => {
    ({ delta } = await encodeInMemory(oldImg, newImg, { frameSize: 16384 }));
    const bounds = frameBounds(delta);
    // The last compressed frame: the workers get the frames before it.
    for (let i = 0; i < bounds.length - 1; i++) if (delta[bounds[i]! + 1] === 1) f = i;
    expect(f).toBeGreaterThan(0);
    at = bounds[f]!;
    stored = delta.slice(at + FRAME_HEADER_SIZE, at + FRAME_HEADER_SIZE + readU32(delta, at + 8));
    raw = readU32(delta, at + 12);
    // The untouched delta applies, and the payload rewritten with its own size (in each field width)
    // is still zstd's frame of the same bytes: what is refused below is the size, not the rewriting.
    expect((await applyInMemory(oldImg, delta)).image).toEqual(newImg);
    const same = zstd.decompress(stored, raw);
    for (const width of [2, 4, 8] as const) expect(zstd.decompress(redeclare(stored, raw, width), raw)).toEqual(same);
  });

  const cases: Array<[string, () => Uint8Array, () => RegExp]> = [
    // (1 GiB: zstd-wasm's heap grew to 1120 MiB for it before the check; 2 GiB and more it fails to allocate.)
    ['1 GiB in 4 bytes', () => redeclare(stored, 2 ** 30, 4), () => /zstd frame declares 1073741824 bytes, the frame header \d+/],
    ['its reserved bit set', () => Uint8Array.from([...stored.subarray(0, 4), stored[4]! | 0x08, ...stored.subarray(5)]), () => /reserved bit/],
    ['1 TiB in 8 bytes', () => redeclare(stored, 2 ** 40, 8), () => /zstd frame declares 1099511627776 bytes/],
    ['one byte more', () => redeclare(stored, raw + 1, 4), () => new RegExp(`zstd frame declares ${raw + 1} bytes, the frame header ${raw}\\)`)],
    ['one byte less in 2 bytes', () => redeclare(stored, raw - 1, 2), () => new RegExp(`zstd frame declares ${raw - 1} bytes`)],
    ['not a zstd frame', () => Uint8Array.from([0x50, 0x2a, 0x4d, 0x18, ...stored.subarray(4)]), () => /payload is not a zstd frame/],
    ['a header cut short', () => stored.subarray(0, 6), () => /zstd frame header cut short/],
  ];

  it.each(cases)('%s: ERR_DELTA_CORRUPT at the frame, on one thread and with workers that are never handed it', async (_what, make, message) => {
    const bad = withPayload(delta, f, make());
    const one = await errorOf(applyInMemory(oldImg, bad, 'random'));
    expect(one.code).toBe('ERR_DELTA_CORRUPT');
    expect(one.offset).toBe(at);
    expect(one.message).toMatch(message());
    expect(one.message).toContain(`frame ${f} at byte ${at}`);

    const handed: Uint8Array[] = [];
    const workers: FrameWorkers = {
      threads: 2,
      compress: async (r, level) => zstd.compress(r, level),
      decompress: async (s, rawLength) => {
        handed.push(s.slice());
        return zstd.decompress(s, rawLength);
      },
    };
    const many = await errorOf(applyWithWorkers(oldImg, bad, workers));
    expect({ code: many.code, offset: many.offset, message: many.message }).toEqual({ code: one.code, offset: one.offset, message: one.message });
    // The frames before it went to the workers; the bad one never did.
    const payload = make();
    expect(handed.length).toBeGreaterThan(0);
    expect(handed.some((s) => s.length === payload.length && s.every((b, i) => b === payload[i]))).toBe(false);
  });
});

describe('patch of a chain whose delta lies about a frame size', () => {
  const scratch = scratchFolders('xbzrle-zstd-size-');

  it('the second delta, read in order: exits 1 naming the frame, writes nothing, and leaves the old output as it was', async () => {
    const dir = scratch.fresh('chain');
    const { oldImg, newImg } = makePair(32, 96);
    const { newImg: third } = makePair(33, 96);
    const last = newImg.slice();
    last.set(third.subarray(0, 40 * 4096), 0);
    const { delta: d1 } = await encodeInMemory(oldImg, newImg, { frameSize: 16384 });
    const { delta: d2 } = await encodeInMemory(newImg, last, { frameSize: 16384 });
    const bounds = frameBounds(d2);
    const f = bounds.findIndex((b, i) => i < bounds.length - 1 && d2[b + 1] === 1);
    expect(f).toBeGreaterThanOrEqual(0);
    const at = bounds[f]!;
    const stored = d2.slice(at + FRAME_HEADER_SIZE, at + FRAME_HEADER_SIZE + readU32(d2, at + 8));
    const base = join(dir, 'base.img');
    const p1 = join(dir, 'd1.xd');
    const p2 = join(dir, 'd2.xd');
    const out = join(dir, 'out.img');
    writeFileSync(base, oldImg);
    writeFileSync(p1, d1);
    writeFileSync(p2, d2);
    // The honest chain applies.
    expect((await runMain(['patch', base, p1, p2, '-o', out])).code).toBe(0);
    expect(new Uint8Array(readFileSync(out))).toEqual(last);
    writeFileSync(out, 'an earlier output');
    writeFileSync(p2, withPayload(d2, f, redeclare(stored, 2 ** 30, 4)));
    const r = await runMain(['patch', base, p1, p2, '-o', out, '-f']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`frame ${f} at byte ${at} \\(zstd frame declares 1073741824 bytes`));
    expect(readFileSync(out, 'utf8')).toBe('an earlier output');
    expect(readdirSync(dir).sort()).toEqual(['base.img', 'd1.xd', 'd2.xd', 'out.img']);
  });

  it('the first delta, read at random for a reference of the second: the same refusal, from the chain reader', async () => {
    // 640 pages (more than one 1 MiB step). d1 changes pages 300-303 (random: stored frames) and
    // 500-503 (text: zstd frames); d2 copies page 500 of d1's image to page 5: a reference the
    // chain resolves in step 0 by reading d1's frames at random, up to page 500's, before d1's
    // reader in order gets past its record for page 300.
    const dir = scratch.fresh('chain-random');
    const pages = 640;
    const r = rng(41);
    const a = new Uint8Array(pages * 4096);
    for (let p = 0; p < pages; p++) fillPage(a, p, 4096, 2, r);
    const b = a.slice();
    for (let p = 300; p < 304; p++) fillPage(b, p, 4096, 3, r);
    for (let p = 500; p < 504; p++) fillPage(b, p, 4096, 1, r);
    const c = b.slice();
    c.copyWithin(5 * 4096, 500 * 4096, 501 * 4096);
    const { delta: d1 } = await encodeInMemory(a, b, { frameSize: 4096 });
    const { delta: d2, stats } = await encodeInMemory(b, c, { frameSize: 4096 });
    expect(stats.refOld).toBe(1);
    // d1's frame holding page 500's record: the first zstd frame after those of pages 300-303.
    const bounds = frameBounds(d1);
    const zstdFrames = bounds.slice(0, -1).flatMap((at, i) => (d1[at + 1] === 1 ? [i] : []));
    const f = zstdFrames[0]!;
    expect(f).toBeGreaterThan(1);
    const at = bounds[f]!;
    const raw = zstd.decompress(d1.subarray(at + FRAME_HEADER_SIZE, at + FRAME_HEADER_SIZE + readU32(d1, at + 8)), readU32(d1, at + 12));
    expect(Number(Buffer.from(raw).readBigUInt64BE(0) >> 12n)).toBe(500);
    const stored = d1.slice(at + FRAME_HEADER_SIZE, at + FRAME_HEADER_SIZE + readU32(d1, at + 8));
    const [base, p1, p2, out] = ['base.img', 'd1.xd', 'd2.xd', 'out.img'].map((n) => join(dir, n)) as [string, string, string, string];
    writeFileSync(base, a);
    writeFileSync(p1, d1);
    writeFileSync(p2, d2);
    expect((await runMain(['patch', base, p1, p2, '-o', out, '--threads', '1'])).code).toBe(0);
    expect(sameBytes(new Uint8Array(readFileSync(out)), c)).toBe(true);
    writeFileSync(p1, withPayload(d1, f, redeclare(stored, 2 ** 30, 4)));
    const bad = await runMain(['patch', base, p1, p2, '-o', join(dir, 'new.img'), '--threads', '1']);
    expect(bad.code, bad.stderr).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`frame ${f} at byte ${at} \\(zstd frame declares 1073741824 bytes, the frame header \\d+\\)`));
    expect(readdirSync(dir).sort()).toEqual(['base.img', 'd1.xd', 'd2.xd', 'out.img']);
  });
});
