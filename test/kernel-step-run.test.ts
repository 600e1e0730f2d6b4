/**
 * The kernel's `step_run` (a run of consecutive pages stepped and their
 * records written in one call; the threaded encoder's job): for every page
 * outcome (zero, miss, unchanged, delta, overflow) its results, its records
 * and its updates of the cached copies are those of the kernel's `step` page
 * by page with the records a {@link RecordWriter} writes for them, for page
 * sizes 1, 4 and 16 KiB, with and without `update`, and at offsets across
 * 4 GiB (the offset goes to the kernel as two 32-bit halves); the same on
 * the worker pool.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { concat, randomBytes, rng } from './helpers/bytes.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { getKernelPool, JobTable, runJobsInline } from '../lib/codec/wasm/pool.js';
import { RecordWriter } from '../lib/format/record-writer.js';

const engine = getEngine();
const shared = engine !== null && engine.shared;

/** Page `i`'s case: the cached copy (or none) and the page. */
function makePages(ps: number, n: number, seed: number): { prev: (Uint8Array | null)[]; cur: Uint8Array[] } {
  const rand = rng(seed);
  const bytes = (): Uint8Array => randomBytes(ps, rand);
  const prev: (Uint8Array | null)[] = [];
  const cur: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const base = bytes();
    switch (i % 6) {
      case 0: // all zero, cached
        prev.push(base);
        cur.push(new Uint8Array(ps));
        break;
      case 1: // not cached
        prev.push(null);
        cur.push(bytes());
        break;
      case 2: // unchanged
        prev.push(base);
        cur.push(base.slice());
        break;
      case 3: {
        // a few bytes changed: a delta
        const c = base.slice();
        for (let k = 0; k < 1 + (i % 5); k++) {
          const at = (rand() * ps) | 0;
          c[at] = c[at]! ^ 0x5a;
        }
        prev.push(base);
        cur.push(c);
        break;
      }
      case 4: // every byte changed: an overflow
        prev.push(base);
        cur.push(Uint8Array.from(base, (b) => b ^ 0xff));
        break;
      default: // all zero, not cached
        prev.push(null);
        cur.push(new Uint8Array(ps));
    }
  }
  return { prev, cur };
}

describe.skipIf(!shared)('kernel step_run', () => {
  const e = engine!;
  const owner = {};
  afterAll(() => e.giveAll(owner));

  /** Lays the pages out in kernel memory, runs step_run as one job (inline or on a pool), returns what it wrote. */
  function run(ps: number, n: number, seed: number, update: boolean, offset: number, pooled: boolean): { bytes: Uint8Array; results: number[]; prevs: Uint8Array[] } {
    const { prev, cur } = makePages(ps, n, seed);
    const curAt = e.take(owner, n * ps, 64);
    const prevAt = e.take(owner, n * ps, 64);
    const prevsAt = e.take(owner, 4 * n, 64);
    const resAt = e.take(owner, 4 * n, 64);
    const recAt = e.take(owner, n * (ps + 11), 64);
    const scratch = e.take(owner, 2 * ps, 64); // a delta page per job (per lane)
    let mem = e.bytes();
    const words = new Int32Array(mem.buffer);
    for (let i = 0; i < n; i++) {
      mem.set(cur[i]!, curAt + i * ps);
      if (prev[i] !== null) mem.set(prev[i]!, prevAt + i * ps);
      words[(prevsAt >>> 2) + i] = prev[i] === null ? 0 : prevAt + i * ps;
    }
    // Split in two jobs when pooled (two lanes, two threads), one otherwise.
    const table = new JobTable(e, 4, 2);
    const half = pooled ? n >> 1 : n;
    const jobs: [number, number][] = pooled ? [[0, half], [half, n - half]] : [[0, n]];
    const recs: number[] = [];
    let recStart = recAt;
    for (const [j, [k0, count]] of jobs.entries()) {
      recs.push(recStart);
      table.stepRun(j * 2, prevsAt + 4 * k0, curAt + k0 * ps, count, ps, update, recStart, resAt + 4 * k0, scratch + j * ps, offset + k0 * ps);
      recStart += count * (ps + 11);
    }
    if (pooled) getKernelPool(e, 2)!.run(table);
    else runJobsInline(table);
    mem = e.bytes();
    const parts: Uint8Array[] = jobs.map((_, j) => mem.slice(recs[j]!, recs[j]! + table.result(j)));
    table.dispose();
    e.giveAll(owner);
    return {
      bytes: concat(parts),
      results: Array.from(words.subarray(resAt >>> 2, (resAt >>> 2) + n)),
      prevs: prev.map((p, i) => (p === null ? new Uint8Array(0) : mem.slice(prevAt + i * ps, prevAt + (i + 1) * ps))),
    };
  }

  /** The same pages through the kernel's step one at a time, records by a RecordWriter. */
  function expected(ps: number, n: number, seed: number, update: boolean, offset: number): { bytes: Uint8Array; results: number[]; prevs: Uint8Array[] } {
    const { prev, cur } = makePages(ps, n, seed);
    const curAt = e.take(owner, ps, 64);
    const prevAt = e.take(owner, ps, 64);
    const out = e.take(owner, ps, 64);
    const chunks: Uint8Array[] = [];
    const writer = new RecordWriter({ pageSize: ps, chunkSize: 1 << 30 }, (c) => chunks.push(c.slice()));
    writer.zero('ram', 0); // the block's name goes with this record: the others CONTINUE
    writer.flush();
    chunks.length = 0;
    const results: number[] = [];
    const prevs: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const mem = e.bytes();
      mem.set(cur[i]!, curAt);
      if (prev[i] !== null) mem.set(prev[i]!, prevAt);
      const r = e.step(prev[i] === null ? 0 : prevAt, curAt, out, ps, update);
      results.push(r);
      const off = offset + i * ps;
      if (r === -3) writer.zero('ram', off);
      else if (r === -4) writer.page('ram', off, mem, curAt);
      else if (r > 0) writer.xbzrle('ram', off, mem, out, r);
      else if (r < 0) writer.page('ram', off, mem, update ? prevAt : curAt);
      prevs.push(prev[i] === null ? new Uint8Array(0) : mem.slice(prevAt, prevAt + ps));
    }
    writer.flush();
    e.giveAll(owner);
    return { bytes: concat(chunks), results, prevs };
  }

  it('writes the records, results and cached copies of step page by page, for every outcome, page size and update, across 4 GiB', () => {
    let seed = 1;
    for (const ps of [1024, 4096, 16384]) {
      for (const update of [false, true]) {
        for (const offset of [0, 2 ** 32 - 7 * ps, 2 ** 45 + 3 * ps]) {
          for (const pooled of [false, true]) {
            const n = 26;
            const want = expected(ps, n, seed, update, offset);
            const got = run(ps, n, seed, update, offset, pooled);
            expect(got.results).toEqual(want.results);
            expect(Buffer.compare(got.bytes, want.bytes)).toBe(0);
            expect(got.prevs.map((p, i) => Buffer.compare(p, want.prevs[i]!))).toEqual(want.prevs.map(() => 0));
            seed++;
          }
        }
      }
    }
    // Every outcome was there: zero, miss, unchanged, delta, overflow.
    const { results } = expected(4096, 12, 99, true, 0);
    expect(new Set(results.map((r) => (r > 0 ? 'delta' : String(r))))).toEqual(new Set(['-3', '-4', '0', 'delta', '-1']));
  });
});
