/**
 * diff's first pass on worker threads (lib/delta/workers.ts, scan chunks):
 * the workers read and scan chunks of OLD and NEW, the calling thread takes
 * the results in order; the delta is the one of one thread, also when a
 * worker fails its chunks.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { diffImages, type DiffImagesOptions } from '../lib/delta/index.js';
import { setFrameWorkerFactory } from '../lib/delta/workers.js';
import { scratchFolders } from './helpers/cli.js';
import { makePair } from './delta-images.js';

const dirs = scratchFolders('xbzrle-threads-delta-scan-');
const wasmOff = process.env['XBZRLE_WASM'] === '0';

afterEach(() => setFrameWorkerFactory(undefined));

/** Scan chunks posted to workers (and how many came back with an error), counted through the factory; `spoil` may change a chunk before it goes. */
function watchScans(spoil?: (m: Record<string, unknown>) => void): { posted: number; failed: number } {
  const seen = { posted: 0, failed: 0 };
  const ids = new Set<number>();
  setFrameWorkerFactory((source, zstd, name) => {
    const w = new Worker(source, { eval: true, workerData: { zstd }, name });
    const post = w.postMessage.bind(w);
    w.postMessage = (m: Record<string, unknown>, transfer?: readonly ArrayBuffer[]) => {
      if ('newFd' in m) {
        seen.posted++;
        ids.add(m['id'] as number);
        spoil?.(m);
      }
      post(m, transfer as never);
    };
    w.on('message', (r: { id: number; error?: string }) => {
      if (ids.has(r.id) && r.error !== undefined) seen.failed++;
    });
    return w;
  });
  return seen;
}

function files(dir: string, seed: number, oldPages: number, newPages: number, oldTail = 0): { old: string; neu: string } {
  const { oldImg, newImg } = makePair(seed, oldPages, 4096, newPages);
  const old = join(dir, 'old.img');
  const neu = join(dir, 'new.img');
  writeFileSync(old, oldImg.subarray(0, oldPages * 4096 - oldTail));
  writeFileSync(neu, newImg);
  return { old, neu };
}

describe.skipIf(wasmOff)('diff: the first pass on workers', () => {
  const shapes: [string, number, number, number][] = [
    ['same sizes', 3000, 3000, 0],
    ['OLD longer than NEW', 3600, 2500, 0],
    ['OLD shorter, not a page multiple', 2000, 3000, 1000],
  ];
  for (const [name, oldPages, newPages, tail] of shapes) {
    it(`workers scan chunks; the delta is one thread's (${name})`, async () => {
      const dir = dirs.fresh('shapes');
      const { old, neu } = files(dir, oldPages + newPages, oldPages, newPages, tail);
      const one = join(dir, 'one.d');
      const s1 = await diffImages(old, neu, one, { threads: 1 });
      for (const [threads, compress] of [
        [2, true],
        [3, true],
        [2, false],
      ] as const) {
        const seen = watchScans();
        const out = join(dir, `t${threads}-${compress}.d`);
        const opts: DiffImagesOptions = { threads, compress };
        const s = await diffImages(old, neu, out, opts);
        expect(seen.posted, `${threads} threads`).toBeGreaterThan(0);
        expect(seen.failed).toBe(0);
        if (compress) {
          expect(readFileSync(out).equals(readFileSync(one)), `${threads} threads`).toBe(true);
          expect(s).toEqual(s1);
        } else {
          const ref = join(dir, 'one-stored.d');
          await diffImages(old, neu, ref, { threads: 1, compress: false });
          expect(readFileSync(out).equals(readFileSync(ref))).toBe(true);
        }
      }
    });
  }

  it('a chunk a worker fails is read and scanned on the calling thread: the same delta', async () => {
    const dir = dirs.fresh('spoiled');
    const { old, neu } = files(dir, 7, 3000, 3000);
    const one = join(dir, 'one.d');
    await diffImages(old, neu, one, { threads: 1 });
    // A descriptor the worker cannot read: its chunk comes back as an error.
    const seen = watchScans((m) => {
      m['newFd'] = -1;
    });
    await diffImages(old, neu, join(dir, 'w.d'), { threads: 2 });
    expect(seen.failed).toBeGreaterThan(0);
    expect(seen.failed).toBe(seen.posted);
    expect(readFileSync(join(dir, 'w.d')).equals(readFileSync(one))).toBe(true);
  });
});
