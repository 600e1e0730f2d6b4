/**
 * The frame pool as diff and patch use it by default (not eager): the first
 * frames on the calling thread, a worker only once it loaded zstd, one frame in
 * hand at a time, the others inline, transfer and frame buffers reused. The
 * delta, the image and the results are those of one thread; a worker that dies
 * (after ready), fails frames, or cannot load zstd loses no frame; a pool
 * disposed while its worker starts leaves nothing pending.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadHasher, loadZstd, type FrameCompressor, type Hasher } from '../lib/delta/index.js';
import { FRAMES_BEFORE_WORKERS, FramePool, setFrameWorkerFactory } from '../lib/delta/workers.js';
import { applyWithWorkers, encodeInMemory, encodeWithWorkers, fillPage, frameBounds, makePair, rng } from './delta-images.js';

let hasher: Hasher;
let zstd: FrameCompressor;
beforeAll(async () => {
  [hasher, zstd] = await Promise.all([loadHasher(), loadZstd()]);
});
afterEach(() => setFrameWorkerFactory(undefined));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Once the pool started a worker, waits until it is ready (so that it takes frames, whatever the machine's load). */
async function untilReady(pool: FramePool): Promise<void> {
  for (let i = 0; i < 1000 && pool.started > 0 && pool.readyWorkers === 0; i++) await sleep(5);
}

/** Real workers (or `source`), counting the frames posted to them. */
let posted = 0;
function counting(source?: string): void {
  posted = 0;
  setFrameWorkerFactory((s, zp, name) => {
    const w = new Worker(source ?? s, { eval: true, workerData: { zstd: zp }, name });
    const post = w.postMessage.bind(w);
    w.postMessage = (v: unknown, t?: never) => {
      posted++;
      post(v, t);
    };
    return w;
  });
}

function busyPair(seed: number, pages: number): { oldImg: Uint8Array; newImg: Uint8Array } {
  const p = makePair(seed, pages);
  const r = rng(seed + 1000);
  // text, pointers and random pages: compressed and stored frames mixed
  for (let i = 0; i < pages / 2; i++) fillPage(p.newImg, Math.floor(r() * pages), 4096, 1 + Math.floor(r() * 3), r);
  return p;
}

describe('the frame pool by default (first frames inline, a worker once ready, one frame in hand)', () => {
  it('the delta and the image of one thread, frames on the workers and inline mixed, buffers reused', async () => {
    const { oldImg, newImg } = busyPair(21, 512);
    for (const [frameSize, level, threads] of [[4096, 3, 2], [16384, 1, 4]] as const) {
      const { delta: one } = await encodeInMemory(oldImg, newImg, { frameSize, level });
      counting();
      const pool = FramePool.create(threads, zstd)!;
      try {
        const many = await encodeWithWorkers(oldImg, newImg, pool, { frameSize, level, pause: () => untilReady(pool) });
        const byWorkers = posted;
        expect(Buffer.from(many).equals(Buffer.from(one)), `${frameSize} ${level} ${threads}`).toBe(true);
        for (const how of ['whole', 'random'] as const) {
          const img = await applyWithWorkers(oldImg, one, pool, how, () => sleep(1));
          expect(Buffer.from(img).equals(Buffer.from(newImg))).toBe(true);
        }
        expect(frameBounds(one).length).toBeGreaterThan(FRAMES_BEFORE_WORKERS + 10);
        expect(byWorkers).toBeGreaterThan(0); // some frames were on a worker
        expect(posted).toBeGreaterThan(byWorkers); // and some of the patch's
      } finally {
        pool.dispose();
      }
    }
  }, 60_000);

  const READY = (body: string): string =>
    `const { parentPort, workerData } = require('worker_threads'); const zstd = require(workerData.zstd); zstd.init().then(() => parentPort.postMessage({ ready: true })); ${body}`;

  for (const [what, source] of [
    ['a worker that dies on its first frame (after ready)', READY(`parentPort.on('message', () => process.exit(3));`)],
    ['a worker that fails every frame', READY(`parentPort.on('message', (m) => parentPort.postMessage({ id: m.id, error: 'out of memory' }));`)],
    ['a worker that cannot load zstd (fatal, no id)', `const { parentPort } = require('worker_threads'); setTimeout(() => parentPort.postMessage({ fatal: 'no zstd' }), 20); parentPort.on('message', () => {});`],
  ] as const) {
    it(`${what}: every frame done, the bytes of one thread, nothing pending`, async () => {
      counting(source);
      const pool = FramePool.create(3, zstd)!;
      const r = rng(3);
      const frames = Array.from({ length: FRAMES_BEFORE_WORKERS + 30 }, () => {
        const f = new Uint8Array(64 * 1024);
        for (let i = 0; i < f.length; i += 16) f[i] = Math.floor(r() * 256);
        return f;
      });
      try {
        const out: Promise<Uint8Array>[] = [];
        for (const f of frames) {
          out.push(pool.compress(f, 3));
          await sleep(5);
        }
        const got = await Promise.race([Promise.all(out), sleep(10_000).then(() => 'hang' as const)]);
        expect(got).not.toBe('hang');
        (got as Uint8Array[]).forEach((c, i) => expect(Buffer.from(c).equals(Buffer.from(zstd.compress(frames[i]!, 3))), `frame ${i}`).toBe(true));
      } finally {
        pool.dispose();
      }
    }, 30_000);
  }

  it('disposed while its worker starts: every frame settles, later ones inline', async () => {
    const pool = FramePool.create(2, zstd)!;
    const f = new Uint8Array(4096).fill(7);
    const out = Array.from({ length: FRAMES_BEFORE_WORKERS + 3 }, () => pool.compress(f, 3));
    expect(pool.started).toBe(1);
    pool.dispose();
    out.push(pool.compress(f, 3));
    const got = await Promise.race([Promise.allSettled(out), sleep(5000).then(() => 'hang' as const)]);
    expect(got).not.toBe('hang');
    for (const s of got as PromiseSettledResult<Uint8Array>[]) expect(s.status).toBe('fulfilled');
  });
});
