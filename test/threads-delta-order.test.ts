/**
 * Frames on workers finish in any order: the delta writer and reader must
 * still write and hand them out in order, with the bytes and errors of one
 * thread. Here the "workers" are the calling thread's zstd behind random
 * delays, so frames finish out of order on every run (the real workers are
 * in threads-delta.test.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadHasher, loadZstd, type FrameCompressor, type Hasher } from '../lib/delta/index.js';
import type { FrameWorkers } from '../lib/delta/codec.js';
import { encodeFrameHeader, FRAME_HEADER_SIZE } from '../lib/delta/format.js';
import { XbzrleError } from '../lib/errors.js';
import { readU32 } from '../lib/format/bytes.js';
import { applyInMemory, applyWithWorkers, encodeInMemory, encodeWithWorkers, fillPage, frameBounds, makePair, rng } from './delta-images.js';

/** makePair's images with a third of NEW's pages refilled (text, pointers, random): many frames. */
function busyPair(seed: number, pages: number): { oldImg: Uint8Array; newImg: Uint8Array } {
  const p = makePair(seed, pages);
  const r = rng(seed + 1000);
  for (let i = 0; i < pages / 3; i++) fillPage(p.newImg, Math.floor(r() * pages), 4096, 1 + Math.floor(r() * 3), r);
  return p;
}

let hasher: Hasher;
let zstd: FrameCompressor;

beforeAll(async () => {
  [hasher, zstd] = await Promise.all([loadHasher(), loadZstd()]);
});

/** Workers that finish some frames 12 ms late (at random): out of order. Counts the frames they took. */
function shuffled(seed: number): FrameWorkers & { calls: number } {
  const r = rng(seed);
  const later = <T>(f: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) =>
      setTimeout(() => {
        try {
          resolve(f());
        } catch (err) {
          reject(err as Error);
        }
      }, r() < 0.3 ? 12 : 0), // a slow frame now and then: those after it finish first
    );
  const w = {
    threads: 3,
    calls: 0,
    compress: (raw: Uint8Array, level: number) => {
      w.calls++;
      return later(() => zstd.compress(raw, level));
    },
    decompress: (stored: Uint8Array, rawLength: number) => {
      w.calls++;
      return later(() => zstd.decompress(stored, rawLength));
    },
  };
  return w;
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string; offset: number | undefined } | null> {
  try {
    await p;
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(XbzrleError);
    const e = err as XbzrleError;
    return { code: e.code, message: e.message, offset: e.offset };
  }
}

describe('frames finishing out of order', () => {
  it('the delta is byte for byte that of one thread (many small frames, dedup, zero pages)', async () => {
    const { oldImg, newImg } = busyPair(21, 384);
    for (const frameSize of [4096, 16384]) {
      const { delta: one } = await encodeInMemory(oldImg, newImg, { frameSize });
      const w = shuffled(frameSize);
      const many = await encodeWithWorkers(oldImg, newImg, w, { frameSize, drainLimit: 2 });
      expect(frameBounds(one).length).toBeGreaterThan(frameSize === 4096 ? 40 : 10);
      expect(w.calls).toBe(frameBounds(one).length - 1); // every frame went through the workers
      expect(Buffer.from(many).equals(Buffer.from(one))).toBe(true);
    }
  });

  it('the reader hands the frames out in order: the same image', async () => {
    const { oldImg, newImg } = busyPair(22, 384);
    const { delta } = await encodeInMemory(oldImg, newImg, { frameSize: 4096 });
    for (const how of ['whole', 'random'] as const) {
      const w = shuffled(how.length);
      const img = await applyWithWorkers(oldImg, delta, w, how);
      expect(w.calls).toBeGreaterThan(20);
      expect(Buffer.from(img).equals(Buffer.from(newImg))).toBe(true);
    }
  });

  it('a damaged frame, a bad zstd payload, a cut delta and a wrong base: the error of one thread', async () => {
    const { oldImg, newImg } = busyPair(23, 160);
    const { delta } = await encodeInMemory(oldImg, newImg, { frameSize: 4096 });
    const bounds = frameBounds(delta);
    const cases: Array<[string, Uint8Array, Uint8Array]> = [];
    for (let f = 0; f < bounds.length - 1; f += 3) {
      const d = delta.slice();
      d[bounds[f]! + FRAME_HEADER_SIZE + 3]! ^= 0x40; // payload checksum
      cases.push([`payload of frame ${f}`, d, oldImg]);
      const h = delta.slice();
      h[bounds[f]! + 9]! ^= 0x01; // header checksum
      cases.push([`header of frame ${f}`, h, oldImg]);
    }
    // A zstd frame whose payload is damaged but whose checksums were made to match: zstd's own error.
    const z = bounds.findIndex((b, i) => i < bounds.length - 1 && delta[b + 1] === 1);
    expect(z).toBeGreaterThanOrEqual(0);
    {
      const at = bounds[z]!;
      const len = readU32(delta, at + 8);
      const stored = delta.slice(at + FRAME_HEADER_SIZE, at + FRAME_HEADER_SIZE + len);
      for (let i = 8; i < stored.length; i += 7) stored[i] = 0xff;
      const d = delta.slice();
      d.set(encodeFrameHeader(z, 1, stored, readU32(delta, at + 12), hasher), at);
      d.set(stored, at + FRAME_HEADER_SIZE);
      cases.push(['zstd payload', d, oldImg]);
    }
    cases.push(['cut in the middle', delta.subarray(0, bounds[Math.floor(bounds.length / 2)]! + 40), oldImg]);
    cases.push(['no trailer', delta.subarray(0, delta.length - 20), oldImg]);
    const other = oldImg.slice();
    other[4096 * 100 + 7]! ^= 1;
    cases.push(['wrong base (content)', delta, other]);
    cases.push(['wrong base (size)', delta, oldImg.subarray(0, oldImg.length - 4096)]);
    for (const [what, d, base] of cases) {
      const one = await errorOf(applyInMemory(base, d, 'whole', { stepPages: 4 }));
      expect(one, what).not.toBeNull();
      const many = await errorOf(applyWithWorkers(base, d, shuffled(what.length)));
      expect(many, what).toEqual(one);
    }
  });
});
