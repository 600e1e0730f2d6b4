#!/usr/bin/env node
// Micro-benchmark of the kernel worker pool (lib/codec/wasm/pool.ts, issue 17):
// the encoder's fused step (zero test, encode against the cached copy, cache
// update) and the decoder's validating decode over SIZE MiB of SPARSE, DENSE
// and UNCHANGED pages in allocPages memory, the cache as large as the image,
// on 1, 2, 4 and 8 threads. Thread counts are interleaved within each
// repetition; the figures are medians. `1` is today's single-thread path
// (one engine.step / decode call per page, no table); `1 (table)` is the same
// batches run through a JobTable on the calling thread (runJobsInline).
// Then the cost of one batch with next to no work (wake, claim, wait).
//
//   node bench/kernel-pool.mjs [--size MiB] [--batch pages] [--reps n] [--threads 1,2,4,8] [--scenarios SPARSE,DENSE,UNCHANGED] [--spin µs]
//
// Reads the sources (bundled with esbuild into bench/.build/), not dist/: the
// pool is not part of the public API.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { buildSync } from 'esbuild';
import { generate, selectScenarios, PAGE_SIZE } from './scenarios.mjs';

/** @typedef {typeof import('../lib/codec/wasm/pool.js') & { getEngine: typeof import('../lib/codec/wasm/engine.js').getEngine, allocPages: typeof import('../lib/codec/pages.js').allocPages, freePages: typeof import('../lib/codec/pages.js').freePages, KERNEL_SHARED: string }} PoolModule */
/** @typedef {import('../lib/codec/wasm/pool.js').KernelPool} KernelPool */
/** @typedef {import('../lib/codec/wasm/pool.js').JobTable} JobTable */

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** @returns {Promise<PoolModule>} */
async function loadPool() {
  const dir = join(ROOT, 'bench', '.build');
  mkdirSync(dir, { recursive: true });
  const entry = join(dir, 'kernel-pool-entry.ts');
  const out = join(dir, 'kernel-pool.mjs');
  writeFileSync(
    entry,
    [
      `export * from ${JSON.stringify(join(ROOT, 'lib/codec/wasm/pool.ts'))};`,
      `export { getEngine } from ${JSON.stringify(join(ROOT, 'lib/codec/wasm/engine.ts'))};`,
      `export { allocPages, freePages } from ${JSON.stringify(join(ROOT, 'lib/codec/pages.ts'))};`,
      `export { KERNEL_SHARED } from ${JSON.stringify(join(ROOT, 'lib/codec/wasm/kernel-wasm.ts'))};`,
    ].join('\n'),
  );
  buildSync({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', target: 'node20', outfile: out, logLevel: 'warning' });
  return /** @type {PoolModule} */ (await import(pathToFileURL(out).href));
}

/** @param {string} name @param {string} fallback */
function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? /** @type {string} */ (process.argv[i + 1]) : fallback;
}

const SIZE = Number(arg('size', '256')) * 1024 * 1024;
const BATCH = Number(arg('batch', '256'));
const REPS = Number(arg('reps', '7'));
const THREADS = arg('threads', '1,2,4,8').split(',').map(Number);
const SCENARIO_NAMES = arg('scenarios', 'SPARSE,DENSE,UNCHANGED').split(',');
const SPIN = arg('spin', '');
const PS = PAGE_SIZE;

/** @param {readonly number[]} v */
function median(v) {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? /** @type {number} */ (s[m]) : (/** @type {number} */ (s[m - 1]) + /** @type {number} */ (s[m])) / 2;
}

const x = await loadPool();
const engine = x.getEngine();
if (engine === null || !engine.shared) throw new Error('the SIMD kernel with shared memory is not available here');
/** @type {Map<number, KernelPool>} */
const pools = new Map();
for (const t of THREADS) {
  if (t <= 1) continue;
  const p = x.getKernelPool(engine, t);
  if (p === null) throw new Error(`no pool of ${t} threads`);
  pools.set(t, p);
}
for (const p of pools.values()) while (p.ready < p.threads - 1) await new Promise((r) => setTimeout(r, 5));
if (SPIN !== '') for (const p of pools.values()) p.spinMicros = Number(SPIN);
/** @type {Map<number, JobTable>} */
const tables = new Map();
for (const [t, p] of pools) tables.set(t, p.createTable(BATCH));
const inlineTable = new x.JobTable(engine, BATCH, 8);

// Today's single-thread decode: the kernel's decode export, one call per page.
/** @type {{ Module: new (bytes: Uint8Array) => object, Instance: new (module: object, imports: object) => { exports: unknown } }} */
const WA = /** @type {any} */ (globalThis).WebAssembly;
const kernel = /** @type {{ decode(src: number, slen: number, dst: number, dlen: number): number }} */ (
  new WA.Instance(new WA.Module(Buffer.from(x.KERNEL_SHARED, 'base64')), { env: { memory: engine.memory } }).exports
);

const n = SIZE / PS;
const outs = x.allocPages(BATCH, PS); // one delta area per job of a batch
const outsAt = engine.addressOf(outs);

console.log(`load average at the start: ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}; (cpu x, y cores): CPU time of all threads relative to 1 thread, and CPU time / wall time`);
console.log('(on a machine shared with other processes, the cores column says how much CPU this process got: no ratio can exceed it)');
console.log(`kernel pool: ${SIZE >> 20} MiB of ${PS}-byte pages, batches of ${BATCH} pages, ${REPS} interleaved reps, medians, workers poll ${[...pools.values()].map((p) => `${p.spinMicros} µs`).join('/')}; ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? '?'}), Node ${process.version}`);
console.log('');

/**
 * @typedef {{ name: string, encode: Map<string, number[]>, decode: Map<string, number[]>, encodeCpu: Map<string, number[]>, decodeCpu: Map<string, number[]>, encodeShare: Map<string, number[]>, decodeShare: Map<string, number[]> }} Row
 */

/** CPU seconds of this process (every thread) since `from` (a process.cpuUsage() value). @param {NodeJS.CpuUsage} from */
function cpuSince(from) {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1e6;
}

/** @type {Row[]} */
const rows = [];
const labels = THREADS.flatMap((t) => (t === 1 ? ['1', '1 (table)'] : [String(t)]));

for (const scenario of selectScenarios(SCENARIO_NAMES)) {
  const pair = generate(scenario, SIZE);
  const old = x.allocPages(n, PS);
  old.set(pair.old);
  const cur = x.allocPages(n, PS);
  cur.set(pair.new);
  const cache = x.allocPages(n, PS); // slot i holds page i: the cache is as large as the image
  const oldAt = engine.addressOf(old);
  const curAt = engine.addressOf(cur);
  const cacheAt = engine.addressOf(cache);

  // The deltas of every page, packed, for the decode runs (made once on one thread).
  engine.copy(cacheAt, oldAt, SIZE);
  const lens = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const r = engine.step(cacheAt + i * PS, curAt + i * PS, outsAt, PS, false);
    lens[i] = r > 0 ? r : 0;
    total += lens[i];
  }
  const deltas = x.allocPages(Math.max(1, Math.ceil(total / PS)), PS);
  const deltasAt = engine.addressOf(deltas);
  const offs = new Float64Array(n);
  for (let i = 0, o = 0; i < n; i++) {
    engine.step(cacheAt + i * PS, curAt + i * PS, deltasAt + o, PS, false);
    offs[i] = o;
    o += lens[i];
  }

  /** One encode pass (untimed restore of the cache first); returns MB/s. @param {string} label */
  const encodeRun = (label) => {
    engine.copy(cacheAt, oldAt, SIZE);
    const t = Number(label.split(' ')[0]);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    if (label === '1') {
      for (let i = 0; i < n; i++) engine.step(cacheAt + i * PS, curAt + i * PS, outsAt + (i % BATCH) * PS, PS, true);
    } else {
      const table = label === '1 (table)' ? inlineTable : /** @type {JobTable} */ (tables.get(t));
      const pool = pools.get(t);
      for (let s = 0; s < n; s += BATCH) {
        table.reset();
        const end = Math.min(n, s + BATCH);
        for (let i = s; i < end; i++) table.step(i, cacheAt + i * PS, curAt + i * PS, outsAt + (i - s) * PS, PS, true);
        if (pool === undefined) x.runJobsInline(table);
        else pool.run(table);
      }
    }
    return { mbps: SIZE / 1e6 / ((performance.now() - t0) / 1e3), cpu: cpuSince(c0), wall: (performance.now() - t0) / 1e3 };
  };

  /** One decode pass (untimed restore of the pages first); returns MB/s of pages. @param {string} label */
  const decodeRun = (label) => {
    engine.copy(cacheAt, oldAt, SIZE);
    const t = Number(label.split(' ')[0]);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    if (label === '1') {
      for (let i = 0; i < n; i++) {
        const len = lens[i];
        if (len > 0 && kernel.decode(deltasAt + offs[i], len, cacheAt + i * PS, PS) < 0) throw new Error('bad delta');
      }
    } else {
      const table = label === '1 (table)' ? inlineTable : /** @type {JobTable} */ (tables.get(t));
      const pool = pools.get(t);
      table.reset();
      for (let i = 0; i < n; i++) {
        const len = lens[i];
        if (len === 0) continue;
        table.decode(i, deltasAt + offs[i], len, cacheAt + i * PS, PS);
        if (table.count === BATCH) {
          if (pool === undefined) x.runJobsInline(table);
          else pool.run(table);
          table.reset();
        }
      }
      if (table.count > 0) {
        if (pool === undefined) x.runJobsInline(table);
        else pool.run(table);
      }
    }
    return { mbps: SIZE / 1e6 / ((performance.now() - t0) / 1e3), cpu: cpuSince(c0), wall: (performance.now() - t0) / 1e3 };
  };

  /** @type {Row} */
  const row = { name: scenario.name, encode: new Map(), decode: new Map(), encodeCpu: new Map(), decodeCpu: new Map(), encodeShare: new Map(), decodeShare: new Map() };
  for (const l of labels) {
    row.encode.set(l, []);
    row.decode.set(l, []);
    row.encodeCpu.set(l, []);
    row.decodeCpu.set(l, []);
    row.encodeShare.set(l, []);
    row.decodeShare.set(l, []);
  }
  // A warm-up round, then REPS rounds with the thread counts interleaved.
  for (let rep = -1; rep < REPS; rep++) {
    for (const l of rep % 2 === 0 ? labels : [...labels].reverse()) {
      const e = encodeRun(l);
      const d = total > 0 ? decodeRun(l) : { mbps: NaN, cpu: NaN, wall: NaN };
      if (rep >= 0) {
        row.encode.get(l)?.push(e.mbps);
        row.decode.get(l)?.push(d.mbps);
        row.encodeCpu.get(l)?.push(e.cpu);
        row.decodeCpu.get(l)?.push(d.cpu);
        row.encodeShare.get(l)?.push(e.cpu / e.wall);
        row.decodeShare.get(l)?.push(d.cpu / d.wall);
      }
    }
  }
  // The last encode run left the cache equal to the new pages: check it.
  if (Buffer.compare(cache, cur) !== 0) throw new Error(`${scenario.name}: the cache does not hold the new pages after the encode`);
  rows.push(row);
  for (const b of [old, cur, cache, deltas]) x.freePages(b);
  printRow(row);
}

/** @param {Row} row */
function printRow(row) {
  for (const kind of /** @type {const} */ (['encode', 'decode'])) {
    const base = median(/** @type {number[]} */ (row[kind].get('1')));
    if (Number.isNaN(base)) {
      console.log(`${row.name.padEnd(10)} ${kind}: nothing to decode (no page changed)`);
      continue;
    }
    const cpuOf = (/** @type {string} */ l) => median(/** @type {number[]} */ (row[kind === 'encode' ? 'encodeCpu' : 'decodeCpu'].get(l)));
    const cells = labels.map((l) => {
      const m = median(/** @type {number[]} */ (row[kind].get(l)));
      const share = median(/** @type {number[]} */ (row[kind === 'encode' ? 'encodeShare' : 'decodeShare'].get(l)));
      return `${l.padStart(9)}: ${m.toFixed(0).padStart(6)} MB/s ${(m / base).toFixed(2)}x (cpu ${(cpuOf(l) / cpuOf('1')).toFixed(2)}, ${share.toFixed(2)} cores)`;
    });
    console.log(`${row.name.padEnd(10)} ${kind}  ${cells.join('  ')}`);
  }
}

// Per-batch overhead: batches of one tiny job per lane (wake, claim, wait),
// back to back (workers polling) and 2 ms apart (workers asleep: a wake-up).
console.log('');
const probe = x.allocPages(1, PS);
const probeAt = engine.addressOf(probe);
for (const [t, pool] of pools) {
  const table = /** @type {JobTable} */ (tables.get(t));
  table.reset();
  for (let l = 0; l < table.lanes; l++) table.isZero(l, probeAt, 64);
  /** @param {number} gapMs */
  const perBatch = (gapMs) => {
    const us = [];
    for (let i = 0; i < (gapMs > 0 ? 200 : 5000); i++) {
      if (gapMs > 0) {
        const until = performance.now() + gapMs;
        while (performance.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
      const t0 = performance.now();
      pool.run(table);
      us.push((performance.now() - t0) * 1e3);
    }
    return median(us);
  };
  console.log(
    `batch overhead, ${t} threads (${table.lanes} lanes): ${perBatch(0).toFixed(1)} µs back to back, ${perBatch(2).toFixed(1)} µs after 2 ms idle (median)`,
  );
}
const inlineTiny = new x.JobTable(engine, 8, 8);
for (let l = 0; l < 8; l++) inlineTiny.isZero(l, probeAt, 64);
{
  const t0 = performance.now();
  for (let i = 0; i < 20000; i++) x.runJobsInline(inlineTiny);
  console.log(`one thread, the same batch through runJobsInline: ${(((performance.now() - t0) * 1e3) / 20000).toFixed(2)} µs`);
}
console.log('');
console.log(`load average at the end: ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
console.log('lanes run per thread (0: the caller):', [...pools].map(([t, p]) => `${t}: ${p.laneCounts().join('/')}`).join('  '));
