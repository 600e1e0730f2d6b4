/**
 * The kernel worker pool (lib/codec/wasm/pool.ts): batches of kernel jobs run
 * on several threads give the results and the memory of the same jobs run in
 * order on one thread, whichever thread runs which lane; a grown memory is
 * seen by the workers; an idle pool never keeps a process alive.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rng } from './helpers/bytes.js';
import { getEngine, type WasmEngine } from '../lib/codec/wasm/engine.js';
import {
  getKernelPool,
  JOB_C,
  JOB_D,
  JOB_PENDING,
  JOB_SKIPPED,
  JOB_WORDS,
  JobTable,
  runJobsInline,
  setWorkerThreads,
  disposeKernelPools,
  type KernelPool,
} from '../lib/codec/wasm/pool.js';

const engine = getEngine();
const shared = engine !== null && engine.shared;

/** Polls (without blocking the event loop) until the pool's workers have all started. */
async function ready(pool: KernelPool): Promise<void> {
  for (let i = 0; i < 500 && pool.ready < pool.threads - 1; i++) await new Promise((r) => setTimeout(r, 10));
  expect(pool.ready).toBe(pool.threads - 1);
}

function rand32(seed: number): () => number {
  const float = rng(seed);
  return () => (float() * 4294967296) >>> 0;
}

/**
 * A work area in kernel memory: `pages` input pages, `slots` cache slots,
 * `outs` delta outputs (one per job), `deltas` encoded deltas (valid, and a
 * few corrupt ones), `dsts` decoder destination pages.
 */
class Area {
  readonly ptr: number;
  readonly size: number;
  readonly deltaLen: number[] = [];
  readonly pagesAt: number;
  readonly slotsAt: number;
  readonly outsAt: number;
  readonly deltasAt: number;
  readonly dstsAt: number;

  constructor(
    readonly e: WasmEngine,
    readonly ps: number,
    readonly pages: number,
    readonly slots: number,
    readonly outs: number,
    readonly deltas: number,
    readonly dsts: number,
    seed: number,
    corrupt: boolean,
  ) {
    const total = pages + slots + outs + deltas + dsts;
    this.size = total * ps;
    this.ptr = e.take(this, this.size, 4096);
    expect(this.ptr).toBeGreaterThan(0);
    this.pagesAt = this.ptr;
    this.slotsAt = this.pagesAt + pages * ps;
    this.outsAt = this.slotsAt + slots * ps;
    this.deltasAt = this.outsAt + outs * ps;
    this.dstsAt = this.deltasAt + deltas * ps;
    const mem = e.bytes();
    const r = rand32(seed);
    const base = new Uint8Array(ps);
    for (let i = 0; i < ps; i++) base[i] = r();
    const variant = (at: number, kind: number): void => {
      const page = mem.subarray(at, at + ps);
      switch (kind) {
        case 0:
          page.fill(0);
          break;
        case 1:
          page.set(base);
          break;
        case 2:
          // random bytes: overflows against anything
          for (let i = 0; i < ps; i++) page[i] = r();
          break;
        case 3:
          // the last byte only: zero otherwise (is_zero scans it all)
          page.fill(0);
          page[ps - 1] = 1 + (r() % 255);
          break;
        default: {
          page.set(base);
          const step = 8 + (r() % 400);
          const len = 1 + (r() % 60);
          for (let s = r() % step; s < ps; s += step) for (let i = s; i < Math.min(ps, s + len); i++) page[i] = page[i]! ^ (1 + (r() % 255));
        }
      }
    };
    for (let p = 0; p < pages; p++) variant(this.pagesAt + p * ps, r() % 7);
    for (let s = 0; s < slots; s++) variant(this.slotsAt + s * ps, r() % 7);
    for (let q = 0; q < dsts; q++) variant(this.dstsAt + q * ps, r() % 7);
    mem.fill(0xee, this.outsAt, this.outsAt + outs * ps);
    // Deltas: base against a variant of it, encoded here (one thread); a few corrupted.
    const scratch = e.take(this, 2 * ps, 4096);
    for (let d = 0; d < deltas; d++) {
      mem.set(base, scratch);
      variant(scratch + ps, 4 + (r() % 3));
      const at = this.deltasAt + d * ps;
      let n = e.encode(scratch, scratch + ps, ps, at, ps);
      if (n < 0) n = 0;
      if (corrupt && n > 0 && r() % 3 === 0) mem[at + (r() % n)] = 0xff;
      this.deltaLen.push(n);
    }
    e.give(this, scratch);
  }

  snapshot(): Uint8Array {
    return this.e.bytes().slice(this.ptr, this.ptr + this.size);
  }

  restore(s: Uint8Array): void {
    this.e.bytes().set(s, this.ptr);
  }

  dispose(): void {
    this.e.giveAll(this);
  }
}

/** A job description, resolved against an Area into table jobs. */
type Job =
  | { op: 'step'; slot: number; page: number; update: boolean }
  | { op: 'zero'; page: number }
  | { op: 'store'; slot: number; page: number }
  | { op: 'encode'; slot: number; page: number }
  | { op: 'decode'; delta: number; dst: number }
  | { op: 'apply'; delta: number; dst: number }
  | { op: 'put'; page: number; dst: number }
  | { op: 'fill'; dst: number; value: number };

function fill(table: JobTable, a: Area, jobs: readonly Job[]): void {
  const ps = a.ps;
  table.reset();
  jobs.forEach((j, i) => {
    const out = a.outsAt + i * ps;
    switch (j.op) {
      case 'step': // slot -1: no cached copy; keyed by the slot (a miss touches no slot: any key)
        table.step(Math.max(0, j.slot), j.slot < 0 ? 0 : a.slotsAt + j.slot * ps, a.pagesAt + j.page * ps, out, ps, j.update);
        break;
      case 'zero':
        table.isZero(j.page, a.pagesAt + j.page * ps, ps);
        break;
      case 'store':
        table.copy(j.slot, a.slotsAt + j.slot * ps, a.pagesAt + j.page * ps, ps);
        break;
      case 'encode':
        table.encode(j.slot, a.slotsAt + j.slot * ps, a.pagesAt + j.page * ps, ps, out, ps);
        break;
      case 'decode':
        table.decode(j.dst, a.deltasAt + j.delta * ps, a.deltaLen[j.delta]!, a.dstsAt + j.dst * ps, ps);
        break;
      case 'apply':
        table.apply(j.dst, a.deltasAt + j.delta * ps, a.deltaLen[j.delta]!, a.dstsAt + j.dst * ps);
        break;
      case 'put':
        table.copy(j.dst, a.dstsAt + j.dst * ps, a.pagesAt + j.page * ps, ps);
        break;
      case 'fill':
        table.fill(j.dst, a.dstsAt + j.dst * ps, j.value, ps);
        break;
    }
  });
}

/** {@link fill} with the outputs of `jobs` after the first `shift` ones (a second table's jobs). */
function fillAfter(table: JobTable, a: Area, jobs: readonly Job[], shift: number): void {
  const ps = a.ps;
  fill(table, a, jobs);
  // Steps and encodes write to outsAt + j * ps: move them past the first table's outputs.
  jobs.forEach((j, i) => {
    if (j.op !== 'step' && j.op !== 'encode') return;
    const word = table.jobs + i * JOB_WORDS + (j.op === 'step' ? JOB_C : JOB_D);
    table.words[word] = table.words[word]! + shift * ps;
  });
}

/**
 * Runs `jobs` on one thread (the reference), then puts the memory back and
 * queues them again for the pool: what the pool must reproduce.
 */
function reference(table: JobTable, area: Area, jobs: readonly Job[]): { want: number[]; wantMem: Uint8Array } {
  const before = area.snapshot();
  fill(table, area, jobs);
  runJobsInline(table);
  const want = results(table);
  const wantMem = area.snapshot();
  area.restore(before);
  fill(table, area, jobs);
  return { want, wantMem };
}

function results(table: JobTable): number[] {
  return Array.from({ length: table.count }, (_, j) => table.result(j));
}

/** Jobs over an area of `pages` pages, `slots` slots, `deltas` deltas and `dsts` destination pages; `apply` only with valid deltas. */
function jobArb(pages: number, slots: number, deltas: number, dsts: number, withApply: boolean): fc.Arbitrary<Job> {
  const page = fc.nat(pages - 1);
  const slot = fc.nat(slots - 1);
  const dst = fc.nat(dsts - 1);
  const delta = fc.nat(deltas - 1);
  const kinds: fc.Arbitrary<Job>[] = [
    fc.record({ op: fc.constant('step' as const), slot: fc.integer({ min: -1, max: slots - 1 }), page, update: fc.boolean() }),
    fc.record({ op: fc.constant('step' as const), slot, page, update: fc.constant(true) }),
    fc.record({ op: fc.constant('zero' as const), page }),
    fc.record({ op: fc.constant('store' as const), slot, page }),
    fc.record({ op: fc.constant('encode' as const), slot, page }),
    fc.record({ op: fc.constant('decode' as const), delta, dst }),
    fc.record({ op: fc.constant('put' as const), page, dst }),
    fc.record({ op: fc.constant('fill' as const), dst, value: fc.nat(255) }),
  ];
  if (withApply) kinds.push(fc.record({ op: fc.constant('apply' as const), delta, dst }));
  return fc.oneof(...kinds);
}

describe.skipIf(!shared)('kernel pool', () => {
  const e = engine!;
  let pools: KernelPool[] = [];

  beforeAll(async () => {
    pools = [2, 3, 4].map((n) => getKernelPool(e, n)!);
    for (const p of pools) expect(p).not.toBeNull();
    for (const p of pools) await ready(p);
  });

  afterAll(() => {
    disposeKernelPools(e);
  });

  it('is null for one thread, without shared memory or without worker threads; shared per engine and thread count', () => {
    expect(getKernelPool(e, 1)).toBeNull();
    expect(getKernelPool(e, 0)).toBeNull();
    expect(getKernelPool(null, 4)).toBeNull();
    expect(getKernelPool(e, 2)).toBe(pools[0]);
    setWorkerThreads(null); // as in a browser
    try {
      expect(getKernelPool(e, 5)).toBeNull();
    } finally {
      setWorkerThreads(undefined);
    }
  });

  it('gives the results and memory of one thread running the jobs in order, over random pages, slots and conflicts', () => {
    const ps = 4096;
    const P = 24;
    const S = 8; // few slots: many jobs on the same slot
    const D = 12;
    const Q = 6;
    const MAX_JOBS = 160;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.array(jobArb(P, S, D, Q, true), { minLength: 1, maxLength: MAX_JOBS }),
        fc.nat(pools.length - 1),
        fc.integer({ min: 1, max: 40 }),
        fc.boolean(),
        (seed, jobs, which, lanes, callerShare) => {
          const pool = pools[which]!;
          const area = new Area(e, ps, P, S, MAX_JOBS, D, Q, seed, false);
          const table = new JobTable(e, MAX_JOBS, lanes);
          try {
            const { want, wantMem } = reference(table, area, jobs);
            pool.callerShare = callerShare;
            pool.run(table);
            expect(results(table)).toEqual(want);
            expect(Buffer.compare(area.snapshot(), wantMem)).toBe(0);
          } finally {
            pool.callerShare = true;
            table.dispose();
            area.dispose();
          }
        },
      ),
      { numRuns: 120 },
    );
    // Workers took part (callerShare false leaves them every lane). Not each worker: which
    // worker claims a lane is timing, and small batches run on the caller alone.
    for (const p of pools) expect(p.laneCounts().slice(1).some((n) => n > 0)).toBe(true);
  });

  it('reports the first failing decode as one thread does, and never runs what followed it in its lane', () => {
    const ps = 1024;
    const P = 8;
    const D = 16;
    const Q = 4;
    const MAX_JOBS = 120;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.array(jobArb(P, 4, D, Q, false), { minLength: 1, maxLength: MAX_JOBS }),
        fc.nat(pools.length - 1),
        fc.integer({ min: 1, max: 12 }),
        fc.boolean(),
        (seed, jobs, which, lanes, callerShare) => {
          const pool = pools[which]!;
          const area = new Area(e, ps, P, 4, MAX_JOBS, D, Q, seed, true);
          const table = new JobTable(e, MAX_JOBS, lanes);
          try {
            const { want, wantMem } = reference(table, area, jobs);
            const first = want.findIndex((r, j) => jobs[j]!.op === 'decode' && r < 0);
            pool.callerShare = callerShare;
            pool.run(table);
            const got = results(table);
            const gotFirst = got.findIndex((r, j) => jobs[j]!.op === 'decode' && r < 0 && r !== JOB_SKIPPED);
            expect(gotFirst).toBe(first);
            if (first < 0) {
              expect(got).toEqual(want);
              expect(Buffer.compare(area.snapshot(), wantMem)).toBe(0);
              return;
            }
            // Everything before the first failure ran, and ran as on one thread.
            expect(got.slice(0, first + 1)).toEqual(want.slice(0, first + 1));
            // Later jobs of the failing lane did not run.
            const laneOf = (j: number): number => {
              const job = jobs[j]!;
              const key = 'dst' in job ? job.dst : 'slot' in job ? Math.max(0, job.slot) : job.page;
              return key % lanes;
            };
            for (let j = first + 1; j < jobs.length; j++) {
              if (laneOf(j) === laneOf(first)) expect(got[j]).toBe(JOB_SKIPPED);
            }
          } finally {
            pool.callerShare = true;
            table.dispose();
            area.dispose();
          }
        },
      ),
      { numRuns: 120 },
    );
  });

  it('runs on the workers alone, and a memory grown after they started is theirs too', () => {
    const pool = pools[2]!;
    const ps = 4096;
    const before = e.bytes().length;
    // Enough to make the engine grow its memory (it grows by at least a quarter).
    const filler = {};
    const big = e.take(filler, Math.max(before, 32 << 20), 4096);
    expect(big).toBeGreaterThan(0);
    expect(e.bytes().length).toBeGreaterThan(before);
    const area = new Area(e, ps, 64, 64, 256, 16, 16, 99, false);
    expect(area.ptr + area.size).toBeGreaterThan(before); // the work lies (partly) in the new memory
    const table = new JobTable(e, 256, 32);
    const jobs: Job[] = [];
    for (let i = 0; i < 256; i++) {
      const k = i % 5;
      if (k === 0) jobs.push({ op: 'step', slot: i % 64, page: (i * 7) % 64, update: true });
      else if (k === 1) jobs.push({ op: 'store', slot: (i * 3) % 64, page: i % 64 });
      else if (k === 2) jobs.push({ op: 'decode', delta: i % 16, dst: i % 16 });
      else if (k === 3) jobs.push({ op: 'fill', dst: (i * 5) % 16, value: i });
      else jobs.push({ op: 'zero', page: i % 64 });
    }
    try {
      const { want, wantMem } = reference(table, area, jobs);
      const counts = pool.laneCounts();
      pool.callerShare = false;
      pool.run(table);
      expect(pool.laneCounts()[0]).toBe(counts[0]); // the caller ran nothing
      expect(results(table)).toEqual(want);
      expect(Buffer.compare(area.snapshot(), wantMem)).toBe(0);
    } finally {
      pool.callerShare = true;
      table.dispose();
      area.dispose();
      e.giveAll(filler);
    }
  });

  it('runs many small batches back to back (wake-ups, spins and sleeps) with the same results', async () => {
    const pool = pools[0]!;
    const ps = 4096;
    const area = new Area(e, ps, 32, 16, 64, 4, 4, 7, false);
    const table = pool.createTable(64);
    try {
      for (let round = 0; round < 300; round++) {
        const jobs: Job[] = [];
        const r = rand32(round);
        for (let i = 0; i < 1 + (round % 40); i++) jobs.push({ op: 'step', slot: r() % 16, page: r() % 32, update: false });
        fill(table, area, jobs);
        runJobsInline(table);
        const want = results(table);
        fill(table, area, jobs);
        pool.run(table);
        expect(results(table)).toEqual(want);
        // now and then let the workers fall asleep
        if (round % 50 === 0) await new Promise((res) => setTimeout(res, 5));
      }
    } finally {
      table.dispose();
      area.dispose();
    }
  });

  it('throws when a job traps, and keeps working', () => {
    const pool = pools[0]!;
    const table = pool.createTable(8);
    try {
      table.copy(0, e.bytes().length - 16, 64, 4096); // past the end of the memory
      expect(() => pool.run(table)).toThrow(/trapped/);
      table.reset();
      const at = e.take(table, 4096);
      table.fill(0, at, 7, 4096);
      table.isZero(1, at, 4096);
      pool.run(table);
      expect(table.result(1)).toBe(0);
      e.give(table, at);
    } finally {
      table.dispose();
    }
  });

  it('runs a started batch while the caller fills the next, with the results and memory of one thread; another batch joins it first', () => {
    const ps = 4096;
    const P = 16;
    const S = 6;
    const D = 8;
    const Q = 6;
    const MAX_JOBS = 120;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.array(jobArb(P, S, D, Q, true), { minLength: 1, maxLength: MAX_JOBS }),
        fc.array(jobArb(P, S, D, Q, true), { minLength: 1, maxLength: MAX_JOBS }),
        fc.nat(pools.length - 1),
        fc.constantFrom('finish', 'run', 'start'),
        (seed, jobsA, jobsB, which, then) => {
          const pool = pools[which]!;
          const area = new Area(e, ps, P, S, 2 * MAX_JOBS, D, Q, seed, false);
          const a = new JobTable(e, MAX_JOBS, 8);
          const b = new JobTable(e, MAX_JOBS, 8);
          try {
            // The reference: A then B, in order on one thread (B's outputs after A's).
            const before = area.snapshot();
            fill(a, area, jobsA);
            runJobsInline(a);
            const wantA = results(a);
            fillAfter(b, area, jobsB, MAX_JOBS);
            runJobsInline(b);
            const wantB = results(b);
            const wantMem = area.snapshot();
            area.restore(before);
            fill(a, area, jobsA);
            pool.start(a);
            fillAfter(b, area, jobsB, MAX_JOBS); // while the workers run A
            if (then === 'finish') {
              pool.finish(a);
              pool.run(b);
            } else if (then === 'run') {
              pool.run(b); // joins A first
              pool.finish(a);
            } else {
              pool.start(b); // joins A first
              pool.finish(b);
              pool.finish(a);
            }
            pool.finish(a); // joined already: nothing
            expect(results(a)).toEqual(wantA);
            expect(results(b)).toEqual(wantB);
            expect(Buffer.compare(area.snapshot(), wantMem)).toBe(0);
          } finally {
            a.dispose();
            b.dispose();
            area.dispose();
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("reads a started batch's results in job order as they come, the caller running the lanes no thread claimed yet: those of one thread", () => {
    const ps = 4096;
    const P = 16;
    const S = 6;
    const D = 8;
    const Q = 6;
    const MAX_JOBS = 200;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.array(jobArb(P, S, D, Q, true), { minLength: 1, maxLength: MAX_JOBS }),
        fc.nat(pools.length - 1),
        fc.integer({ min: 1, max: 40 }),
        (seed, jobs, which, lanes) => {
          const pool = pools[which]!;
          const area = new Area(e, ps, P, S, MAX_JOBS, D, Q, seed, false);
          const table = new JobTable(e, MAX_JOBS, lanes);
          try {
            const { want, wantMem } = reference(table, area, jobs);
            expect(table.settled(0)).toBe(JOB_PENDING); // not run yet
            expect(pool.help(table)).toBe(false); // not the started batch
            pool.start(table);
            const got: number[] = [];
            for (let j = 0; j < table.count; j++) {
              let r = table.settled(j);
              while (r === JOB_PENDING) {
                if (!pool.help(table)) pool.finish(table);
                r = table.settled(j);
              }
              got.push(r);
            }
            pool.finish(table);
            expect(got).toEqual(want);
            expect(results(table)).toEqual(want);
            expect(Buffer.compare(area.snapshot(), wantMem)).toBe(0);
          } finally {
            table.dispose();
            area.dispose();
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it("throws a started batch's trap from its finish, also when another batch joined it", () => {
    const pool = pools[1]!;
    const a = pool.createTable(8);
    const b = pool.createTable(8);
    const at = e.take(a, 4096, 64, true);
    try {
      for (const joined of [false, true]) {
        a.reset();
        b.reset();
        a.copy(0, e.bytes().length - 16, 64, 4096); // past the end of the memory
        pool.start(a);
        b.isZero(0, at, 4096);
        if (joined) pool.run(b); // joins A: A's trap is A's, B runs
        expect(() => pool.finish(a)).toThrow(/trapped/);
        if (joined) expect(b.result(0)).toBe(1);
        pool.finish(a); // thrown once
      }
    } finally {
      e.give(a, at);
      a.dispose();
      b.dispose();
    }
  });

  it('finishes a started batch before dispose stops the workers', () => {
    const pool = getKernelPool(e, 7)!;
    const table = pool.createTable(64);
    const at = e.take(table, 64 * 4096, 4096, true);
    try {
      for (let i = 0; i < 64; i++) table.fill(i, at + i * 4096, i + 1, 4096);
      pool.start(table);
      pool.dispose();
      pool.finish(table);
      for (let i = 0; i < 64; i++) expect(e.bytes()[at + i * 4096 + 4095]).toBe(i + 1);
    } finally {
      e.give(table, at);
      table.dispose();
    }
  });

  it('runs batches on the caller after dispose', () => {
    const pool = getKernelPool(e, 6)!;
    const table = pool.createTable(8);
    const at = e.take(table, 4096, 64, true);
    try {
      pool.dispose();
      expect(getKernelPool(e, 6)).not.toBe(pool);
      table.isZero(0, at, 4096);
      pool.run(table);
      expect(table.result(0)).toBe(1);
    } finally {
      e.give(table, at);
      table.dispose();
      getKernelPool(e, 6)?.dispose();
    }
  });
});

describe.skipIf(!shared)('kernel pool in a process of its own', () => {
  let dir = '';
  let bundle = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'xbzrle-pool-'));
    bundle = join(dir, 'pool.mjs');
    const entry = join(dir, 'entry.ts');
    const lib = fileURLToPath(new URL('../lib/codec/', import.meta.url));
    writeFileSync(entry, `export * from ${JSON.stringify(join(lib, 'wasm/pool.ts'))};\nexport { getEngine } from ${JSON.stringify(join(lib, 'wasm/engine.ts'))};\n`);
    buildSync({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', outfile: bundle, logLevel: 'silent' });
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function child(script: string): { status: number | null; stdout: string; stderr: string; ms: number } {
    const file = join(dir, `child-${Math.random().toString(36).slice(2)}.mjs`);
    writeFileSync(file, `import * as x from ${JSON.stringify(bundle)};\n${script}`);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
  }

  const work = `
    const e = x.getEngine();
    const pool = x.getKernelPool(e, 4);
    if (pool === null) throw new Error('no pool');
    while (pool.ready < 3) await new Promise((r) => setTimeout(r, 5));
    const t = pool.createTable(64);
    const at = e.take(t, 64 * 4096, 4096, true);
    pool.callerShare = false;
    for (let i = 0; i < 64; i++) t.isZero(i, at + i * 4096, 4096);
    pool.run(t);
    let zeros = 0;
    for (let i = 0; i < 64; i++) zeros += t.result(i);
    console.log('zeros', zeros, 'workers', pool.laneCounts().slice(1).reduce((a, b) => a + b));
  `;

  it('exits on its own with an idle pool (workers are unref()ed)', () => {
    const r = child(work);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^zeros 64 workers 32\n$/);
    expect(r.status).toBe(0);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('exits after dispose, and with process.exit while workers sleep', () => {
    expect(child(`${work}\npool.dispose();`).status).toBe(0);
    const r = child(`${work}\nsetTimeout(() => process.exit(3), 50);`);
    expect(r.status).toBe(3);
  });
});
