/**
 * `threads` of diffImages/patchImage and `--threads` of `xbzrle diff` and
 * `xbzrle patch`: frames compressed and decompressed on worker threads give
 * the same delta, image, counters and errors as one thread.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, type TransferListItem } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { diffImages, loadZstd, patchImage, type DeltaStats } from '../lib/delta/index.js';
import { FRAME_HEADER_SIZE } from '../lib/delta/format.js';
import { FRAMES_BEFORE_WORKERS, FramePool, setFrameWorkersEager, setFrameWorkerFactory } from '../lib/delta/workers.js';
import { XbzrleError } from '../lib/errors.js';
import { runMain, scratchFolders } from './helpers/cli.js';
import { fillPage, frameBounds, makePair, rng } from './delta-images.js';

const dirs = scratchFolders('xbzrle-threads-delta-');
const PS = 4096;

/** makePair's images with a third of NEW's pages refilled (text, pointers, random): a few 1 MiB frames. */
function busyPair(seed: number, pages: number, from?: Uint8Array): { oldImg: Uint8Array; newImg: Uint8Array } {
  const p = makePair(seed, pages);
  if (from !== undefined) {
    p.oldImg = from;
    p.newImg = from.slice();
  }
  const r = rng(seed + 1000);
  for (let i = 0; i < pages / 3; i++) fillPage(p.newImg, Math.floor(r() * pages), PS, 1 + Math.floor(r() * 3), r);
  // moved and duplicated pages (references)
  for (let i = 0; i < pages / 50; i++) {
    const a = Math.floor(r() * pages) * PS;
    p.newImg.copyWithin(Math.floor(r() * pages) * PS, a, a + PS);
  }
  for (let i = 0; i < pages / 50; i++) {
    const a = Math.floor(r() * pages) * PS;
    p.newImg.set(p.oldImg.subarray(a, a + PS), Math.floor(r() * pages) * PS);
  }
  return p;
}

/** Writes OLD and NEW into `dir`. */
function files(dir: string, seed: number, pages = 2048): { old: string; neu: string; oldImg: Uint8Array; newImg: Uint8Array } {
  const { oldImg, newImg } = busyPair(seed, pages);
  const old = join(dir, 'old.img');
  const neu = join(dir, 'new.img');
  writeFileSync(old, oldImg);
  writeFileSync(neu, newImg);
  return { old, neu, oldImg, newImg };
}

/** Counts the frame workers started (the real ones), and the frames posted to them. */
let started = 0;
let posted = 0;
function countWorkers(): void {
  started = 0;
  posted = 0;
  setFrameWorkerFactory((source, zstd, name) => {
    started++;
    const w = new Worker(source, { eval: true, workerData: { zstd }, name });
    const post = w.postMessage.bind(w);
    w.postMessage = (value: unknown, transfer?: readonly TransferListItem[]) => {
      posted++;
      post(value, transfer);
    };
    return w;
  });
}
// These small images make a few frames: every frame goes to the workers, which start with the first
// (by default the calling thread does 8 first, and those that come while the workers start or are busy).
beforeEach(() => setFrameWorkersEager(true));
afterEach(() => {
  setFrameWorkerFactory(undefined);
  setFrameWorkersEager(false);
});

/** Frame start offsets of a delta. */
const frames = (delta: Uint8Array): number[] => frameBounds(delta).slice(0, -1);

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string; offset: number | undefined }> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(XbzrleError);
    const e = err as XbzrleError;
    return { code: e.code, message: e.message, offset: e.offset };
  }
  throw new Error('no error');
}

describe('the frame pool', () => {
  // A worker's start costs more than a few frames take on the calling thread; and with every
  // worker busy, the calling thread does the next frame rather than wait.
  it('does the first frames on the calling thread, then those that come while a worker starts or is busy', async () => {
    setFrameWorkersEager(false);
    countWorkers();
    const zstd = await loadZstd();
    const pool = FramePool.create(2, zstd)!;
    try {
      const r = rng(9);
      const frames = Array.from({ length: FRAMES_BEFORE_WORKERS + 3 }, () => {
        const f = new Uint8Array(64 * 1024);
        for (let i = 0; i < f.length; i += 64) f[i] = Math.floor(r() * 256);
        return f;
      });
      const out: Promise<Uint8Array>[] = [];
      for (const [i, f] of frames.entries()) {
        out.push(pool.compress(f, 3));
        expect(pool.started).toBe(i < FRAMES_BEFORE_WORKERS ? 0 : 1);
      }
      expect(posted).toBe(0); // the worker is starting: every frame so far on this thread
      // Once it is ready, it takes a frame; the next, while it has that one, stays here.
      for (let i = 0; i < 200 && posted === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
        out.push(pool.compress(frames[0]!, 3));
        frames.push(frames[0]!);
      }
      expect(posted).toBe(1);
      out.push(pool.compress(frames[1]!, 3));
      frames.push(frames[1]!);
      expect(posted).toBe(1);
      const got = await Promise.all(out);
      got.forEach((c, i) => expect(Buffer.from(c).equals(Buffer.from(zstd.compress(frames[i]!, 3)))).toBe(true));
      expect(started).toBe(1);
    } finally {
      pool.dispose();
    }
  });
});

describe('diffImages and patchImage with threads', () => {
  it('the same delta and counters for 1, 2 and 3 threads (compressed, stored, plain qemu)', async () => {
    const dir = dirs.fresh('diff');
    const { old, neu } = files(dir, 31);
    countWorkers();
    for (const [format, compress] of [['xbzrle', true], ['xbzrle', false], ['qemu', false]] as const) {
      const outs: Buffer[] = [];
      const stats: DeltaStats[] = [];
      for (const threads of [1, 2, 3]) {
        const out = join(dir, `${format}-${compress}-${threads}.d`);
        stats.push(await diffImages(old, neu, out, { format, compress, threads }));
        outs.push(readFileSync(out));
      }
      if (format === 'xbzrle') expect(frames(outs[0]!).length).toBeGreaterThanOrEqual(3);
      if (compress) expect(stats[0]!.refOld + stats[0]!.refNew).toBeGreaterThan(0);
      for (const i of [1, 2]) {
        expect(outs[i]!.equals(outs[0]!), `${format} ${compress} ${i + 1} threads`).toBe(true);
        expect(stats[i]).toEqual(stats[0]);
      }
    }
    expect(started).toBeGreaterThan(0); // the compressed runs used workers
  });

  it('the same image and counters for 1, 2 and 3 threads, also for a chain', async () => {
    const dir = dirs.fresh('patch');
    const { old, neu, newImg } = files(dir, 32);
    const d1 = join(dir, 'd1');
    await diffImages(old, neu, d1);
    // Two more deltas from NEW on: a chain of three.
    const mid = busyPair(33, 2048, newImg);
    const last = busyPair(34, 2048, mid.newImg);
    writeFileSync(join(dir, 'mid.img'), mid.newImg);
    writeFileSync(join(dir, 'last.img'), last.newImg);
    const d2 = join(dir, 'd2');
    const d3 = join(dir, 'd3');
    await diffImages(neu, join(dir, 'mid.img'), d2);
    await diffImages(join(dir, 'mid.img'), join(dir, 'last.img'), d3);
    countWorkers();
    for (const [deltas, want] of [[[d1], readFileSync(neu)], [[d1, d2, d3], Buffer.from(last.newImg)]] as const) {
      const stats: DeltaStats[][] = [];
      for (const threads of [1, 2, 3]) {
        const out = join(dir, `out-${deltas.length}-${threads}.img`);
        stats.push(await patchImage(old, [...deltas], out, { threads }));
        expect(readFileSync(out).equals(want), `${deltas.length} deltas, ${threads} threads`).toBe(true);
      }
      expect(stats[1]).toEqual(stats[0]);
      expect(stats[2]).toEqual(stats[0]);
    }
    expect(started).toBeGreaterThan(0);
  });

  it('a corrupt frame, header or trailer and a wrong base: the same error with 2 threads as with 1, and nothing written', async () => {
    const dir = dirs.fresh('errors');
    const { old, neu, oldImg } = files(dir, 35);
    const good = join(dir, 'good.d');
    await diffImages(old, neu, good);
    const delta = readFileSync(good);
    const b = frames(delta);
    const flipped = (at: number): string => {
      const d = Buffer.from(delta);
      d[at]! ^= 0x10;
      const p = join(dir, `bad-${at}.d`);
      writeFileSync(p, d);
      return p;
    };
    const otherBase = join(dir, 'other.img');
    const o = Buffer.from(oldImg);
    o[PS * 7 + 1]! ^= 1;
    writeFileSync(otherBase, o);
    const cases: Array<[string, string, string]> = [
      ['payload of the last frame', old, flipped(b[b.length - 1]! + FRAME_HEADER_SIZE + 100)],
      ['header of frame 1', old, flipped(b[1]! + 5)],
      ['trailer', old, flipped(delta.length - 3)],
      ['wrong base', otherBase, good],
    ];
    for (const [what, base, d] of cases) {
      const errs = [];
      for (const threads of [1, 2]) {
        const out = join(dir, `never-${threads}.img`);
        errs.push(await errorOf(patchImage(base, d, out, { threads })));
        expect(existsSync(out), what).toBe(false);
      }
      expect(errs[1], what).toEqual(errs[0]);
    }
    expect(readdirSync(dir).filter((f) => f.includes('xbzrle-tmp'))).toEqual([]);
  });

  it('threads is a whole number from 1 to 256', async () => {
    const dir = dirs.fresh('args');
    const { old, neu } = files(dir, 36, 8);
    for (const bad of [0, 257, 1.5, Number.NaN]) {
      await expect(diffImages(old, neu, join(dir, 'x'), { threads: bad })).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_/) });
      await expect(patchImage(old, join(dir, 'x'), join(dir, 'y'), { threads: bad })).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_/) });
    }
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });

  it('uses at most 4 threads for the frames, whatever --threads says (memory stays bounded)', async () => {
    const dir = dirs.fresh('cap');
    const { old, neu } = files(dir, 300, 4096);
    countWorkers();
    await diffImages(old, neu, join(dir, 'd'), { threads: 8 });
    expect(started).toBe(3);
  });

  it('hands a worker the frame, not the whole delta it sits in (a delta given as bytes)', async () => {
    const dir = dirs.fresh('posted');
    const { old, neu } = files(dir, 41, 4096);
    await diffImages(old, neu, join(dir, 'd'));
    const delta = new Uint8Array(readFileSync(join(dir, 'd')));
    let posted = 0;
    setFrameWorkerFactory((source, zstd, name) => {
      const w = new Worker(source, { eval: true, workerData: { zstd }, name });
      const post = w.postMessage.bind(w);
      w.postMessage = (m: { data: Uint8Array }, transfer?: readonly ArrayBuffer[]) => {
        posted += m.data.buffer.byteLength;
        post(m, transfer as never);
      };
      return w;
    });
    await patchImage(old, delta, join(dir, 'out'), { threads: 4 });
    expect(readFileSync(join(dir, 'out')).equals(readFileSync(neu))).toBe(true);
    expect(posted).toBeGreaterThan(0);
    expect(posted).toBeLessThan(1.5 * delta.length);
  });

  it('redoes on the calling thread a frame a worker fails (the error, if any, is one thread’s)', async () => {
    const dir = dirs.fresh('failing');
    const { old, neu } = files(dir, 43);
    const ref = join(dir, 'ref.d');
    await diffImages(old, neu, ref, { threads: 1 });
    let asked = 0;
    setFrameWorkerFactory((_source, zstd, name) => {
      const w = new Worker(
        "const { parentPort } = require('worker_threads'); parentPort.on('message', (m) => parentPort.postMessage({ id: m.id, error: 'out of memory' }));",
        { eval: true, workerData: { zstd }, name },
      );
      w.on('message', () => asked++);
      return w;
    });
    await diffImages(old, neu, join(dir, 'w.d'), { threads: 3 });
    expect(readFileSync(join(dir, 'w.d')).equals(readFileSync(ref))).toBe(true);
    await patchImage(old, ref, join(dir, 'w.img'), { threads: 3 });
    expect(readFileSync(join(dir, 'w.img')).equals(readFileSync(neu))).toBe(true);
    expect(asked).toBeGreaterThan(0);
  });

  it('without workers, or when they die, the frames are done on the calling thread: the same bytes', async () => {
    const dir = dirs.fresh('fallback');
    const { old, neu } = files(dir, 37);
    const ref = join(dir, 'ref.d');
    await diffImages(old, neu, ref, { threads: 1 });
    const want = readFileSync(ref);
    setFrameWorkerFactory(null);
    await diffImages(old, neu, join(dir, 'none.d'), { threads: 3 });
    expect(readFileSync(join(dir, 'none.d')).equals(want)).toBe(true);
    await patchImage(old, ref, join(dir, 'none.img'), { threads: 3 });
    expect(readFileSync(join(dir, 'none.img')).equals(readFileSync(neu))).toBe(true);
    let dying = 0;
    setFrameWorkerFactory((_source, zstd, name) => {
      dying++;
      return new Worker("throw new Error('no zstd here')", { eval: true, workerData: { zstd }, name, stderr: true });
    });
    await diffImages(old, neu, join(dir, 'dead.d'), { threads: 3 });
    expect(readFileSync(join(dir, 'dead.d')).equals(want)).toBe(true);
    await patchImage(old, ref, join(dir, 'dead.img'), { threads: 3 });
    expect(readFileSync(join(dir, 'dead.img')).equals(readFileSync(neu))).toBe(true);
    expect(dying).toBeGreaterThan(0);
  });
});

describe('xbzrle diff and patch --threads', () => {
  it('diff writes the same delta for --threads 1, 2 and 3 (both formats); patch rebuilds NEW', async () => {
    const dir = dirs.fresh('cli');
    const { old, neu } = files(dir, 38);
    for (const fmt of [[], ['--no-compress'], ['--format', 'qemu']]) {
      const outs: Buffer[] = [];
      for (const n of ['1', '2', '3']) {
        const out = join(dir, `d${n}${fmt.join('')}`);
        const r = await runMain(['diff', old, neu, '-o', out, '--threads', n, '-q', ...fmt]);
        expect(r.code, r.stderr).toBe(0);
        outs.push(readFileSync(out));
      }
      expect(outs[1]!.equals(outs[0]!)).toBe(true);
      expect(outs[2]!.equals(outs[0]!)).toBe(true);
    }
    const img = join(dir, 'back.img');
    const r = await runMain(['patch', old, join(dir, 'd2'), '-o', img, '--threads', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(img).equals(readFileSync(neu))).toBe(true);
  });

  it('patch of a corrupt delta says the same with --threads 2 as with 1, and writes nothing', async () => {
    const dir = dirs.fresh('cli-bad');
    const { old, neu } = files(dir, 39);
    const d = join(dir, 'd');
    expect((await runMain(['diff', old, neu, '-o', d, '-q'])).code).toBe(0);
    const bytes = readFileSync(d);
    const b = frames(bytes);
    bytes[b[2]! + FRAME_HEADER_SIZE + 9]! ^= 0x01;
    writeFileSync(d, bytes);
    const said: string[] = [];
    for (const n of ['1', '2']) {
      const out = join(dir, `out${n}.img`);
      const r = await runMain(['patch', old, d, '-o', out, '--threads', n]);
      expect(r.code).toBe(1);
      expect(existsSync(out)).toBe(false);
      said.push(r.stderr);
    }
    expect(said[0]).toContain('corrupt in frame 2');
    expect(said[1]).toBe(said[0]);
  });

  it('--help of diff and patch names --threads', async () => {
    for (const cmd of ['diff', 'patch']) {
      const r = await runMain([cmd, '--help']);
      expect(r.stdout.toString()).toMatch(/--threads N +threads to (compress|decompress) the frames on/);
    }
  });
});
