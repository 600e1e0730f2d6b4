/**
 * a decode into a FilePageStore against a plain model, the stream written
 * record by record (PAGE, ZERO, XBZRLE, repeated pages in one chunk, MEM_SIZE shrinking
 * and growing the blocks, two blocks), fed through ONE reused buffer scribbled after
 * every write callback; 1 and 2 threads, the worker pool starting mid-stream
 * (parallelAfter), small and large caches, fsync on and off.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FilePageStore, RecordWriter, XbzrleDecodeStream } from '../lib/index.js';
import { rng } from './helpers/bytes.js';
import { writeThroughOneBuffer } from './helpers/streams.js';
import { tempDirEach } from './helpers/temp-dir.js';

const PS = 4096;
let dir = '';
tempDirEach('xbzrle-borrow-model-', (d) => (dir = d));

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

interface Built {
  bytes: Uint8Array;
  images: Map<string, Uint8Array>;
}

/** A random stream and the images it leaves (blocks 'a' and 'b', up to `pages` pages each). */
function build(seed: number, pages: number, records: number): Built {
  const rand = rng(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  const out: Uint8Array[] = [];
  const w = new RecordWriter({ pageSize: PS }, (c) => out.push(c.slice()));
  const names = ['a', 'b'];
  const len = new Map<string, number>([
    ['a', pages],
    ['b', pages],
  ]);
  const images = new Map<string, Uint8Array>(names.map((n) => [n, new Uint8Array(pages * PS)]));
  const declare = (): void => {
    w.memSize(names.map((id) => ({ id, length: len.get(id)! * PS })));
  };
  declare();
  let seq = 0; // pages in file order most of the time, as a decoder gets them
  for (let r = 0; r < records; r++) {
    const k = int(100);
    const block = int(4) === 0 ? 'b' : 'a';
    const n = len.get(block)!;
    if (k < 2) {
      // MEM_SIZE: shrink or grow one block (the file is cut: pages past the end read as zeros)
      const nl = 1 + int(pages);
      const img = images.get(block)!;
      img.fill(0, Math.min(nl, n) * PS);
      len.set(block, nl);
      declare();
      continue;
    }
    const p = int(5) === 0 ? int(n) : seq++ % n;
    const img = images.get(block)!.subarray(p * PS, (p + 1) * PS);
    if (k < 40) {
      const v = int(256);
      for (let i = 0; i < PS; i++) img[i] = (v + i * 7) & 0xff;
      w.page(block, p * PS, img, 0);
      if (int(6) === 0) {
        // the same page again at once (a second PAGE, a ZERO or a delta in the same chunk)
        const again = int(3);
        if (again === 0) {
          img.fill(int(256));
          w.page(block, p * PS, img, 0);
        } else if (again === 1) {
          img.fill(0);
          w.zero(block, p * PS, 0);
        } else {
          const nn = 1 + int(3000);
          const v2 = int(256);
          for (let i = 0; i < nn; i++) img[i] = (v2 + i) & 0xff;
          const d = new Uint8Array([...uleb(0), ...uleb(nn), ...img.subarray(0, nn)]);
          w.xbzrle(block, p * PS, d, 0, d.length);
        }
      }
    } else if (k < 60) {
      img.fill(0);
      w.zero(block, p * PS, 0);
    } else {
      const nn = 1 + int(3000);
      const v = int(256);
      for (let i = 0; i < nn; i++) img[i] = (v + i) & 0xff;
      const d = new Uint8Array([...uleb(0), ...uleb(nn), ...img.subarray(0, nn)]);
      w.xbzrle(block, p * PS, d, 0, d.length);
    }
    if (int(200) === 0) w.eos();
  }
  w.eos();
  w.flush();
  const total = out.reduce((s, c) => s + c.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of out) {
    bytes.set(c, at);
    at += c.length;
  }
  const final = new Map<string, Uint8Array>();
  for (const b of names) final.set(b, images.get(b)!.subarray(0, len.get(b)! * PS));
  return { bytes, images: final };
}

async function decodeReusing(stream: Uint8Array, seed: number, threads: number, cacheSize: number, parallelAfter: number, fsync: boolean, emit = false): Promise<void> {
  const store = new FilePageStore({ dir, cacheSize, parallelAfter, fsync });
  const dec = new XbzrleDecodeStream({ store, emitPages: emit, threads, readableHighWaterMark: 3 });
  dec.resume();
  const r = rng(seed ^ 0x1234);
  const room = 1 << 17;
  await writeThroughOneBuffer(dec, stream, () => 1 + Math.floor(r() * (r() < 0.5 ? 300 : room)), room);
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return i;
  return -1;
}

describe('decode into files against a model, the input reused', () => {
  it('same images for 1 and 2 threads, workers starting mid-stream', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1e6 }),
        fc.constantFrom(1, 2),
        fc.constantFrom(8 * PS, 64 * PS, 1 << 20),
        fc.constantFrom(0, 30000, 300000, 4 << 20),
        fc.boolean(),
        fc.boolean(),
        async (seed, threads, cacheSize, parallelAfter, fsync, emit) => {
          const { bytes, images } = build(seed, 96, 1500);
          await decodeReusing(bytes, seed, threads, cacheSize, parallelAfter, fsync, emit);
          for (const [b, img] of images) {
            const file = new Uint8Array(await readFile(join(dir, `${b}.bin`)));
            const d = firstDiff(file, img);
            expect({ b, d, fileLen: file.length, imgLen: img.length }).toEqual({ b, d: -1, fileLen: file.length, imgLen: img.length });
          }
          await rm(join(dir, 'a.bin'), { force: true });
          await rm(join(dir, 'b.bin'), { force: true });
        },
      ),
      { numRuns: Number(process.env.RUNS ?? 12) },
    );
  }, 120000);
});
