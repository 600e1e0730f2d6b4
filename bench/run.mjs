#!/usr/bin/env node
// XBZRLE benchmark harness.
//
//   npm run build && node bench/run.mjs [--quick] [options]
//
// Plain ESM JavaScript importing the built package (../dist/index.js), so it
// runs under plain `node` with no TypeScript step. See bench/README.md.
//
// The TypeScript encoder is measured in a child process (this file again,
// forked with XBZRLE_WASM=0 and --ts-worker, driven over IPC), so the C
// baseline, the TS path and the SIMD paths can be measured interleaved:
// each scenario runs REPS rounds of [C, TS, SIMD on ordinary buffers, SIMD
// on allocPages memory, memcmp, decode on ordinary buffers, decode on
// allocPages memory] and the best (max MB/s) of each is kept. The ratios are computed from those bests.
// Then a paired phase: the C baseline as a server (baseline --serve) and the
// two SIMD paths take turns, one short sample each, and the ratio of every
// pair (samples milliseconds apart) is kept; the median of those ratios is
// printed next to the ratio of bests. See bench/README.md, "How the paths are measured".
//
// Exit status: 0 when every check passed, 1 on a MISMATCH (any encoder path
// against C or against each other), a failed round trip or a crash. Speed
// never affects the exit status.

import { fork, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Benchmark from 'benchmark';
import { DEFAULT_SIZE, PAGE_SIZE, QUICK_SIZE, generate, selectScenarios } from './scenarios.mjs';
import { loadPeers, peerBench, PEER_NAMES } from './peers.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const BUILD = join(HERE, '.build');
const MiB = 1024 * 1024;
/** MB/s here means 1e6 bytes of page data per second. */
const MB = 1e6;

// ---------------------------------------------------------------- options

const HELP = `usage: node bench/run.mjs [options]

  --quick            small buffers (4 MiB), one round, short timings; a CI
                     smoke test (fails only on a mismatch or a crash)
  --size <MiB>       buffer size per scenario (default 64, quick 4)
  --reps <n>         interleaved rounds per scenario; best of each kept
                     (default 4, quick 1)
  --time <seconds>   Benchmark.js maxTime per JS measurement and C loop time
                     per round (default 0.5; quick 0.05)
  --pairs <n>        paired C/SIMD samples per scenario (default 40, quick 3;
                     0 skips the paired phase)
  --stream-runs <n>  timed repetitions of each stream measurement, after one
                     untimed warm-up; best reported (default 3, quick 1)
  --peer-size <MiB>  bytes per scenario for the peer compressors
                     (default 16, quick 4)
  --only <names>     comma-separated scenario names (e.g. SPARSE,DENSE)
  --cpu <n>          Linux: pin this process, its threads and its children
                     (the C baseline, the TS child) to CPU n with taskset, so
                     C and JavaScript run on the same core
  --no-c             skip the C baseline
  --no-ts            skip the TypeScript-path child process
  --no-stream        skip the stream measurements
  --no-peers         skip the peer compressors
  --no-memory        skip bench/memory.mjs (the 1 GiB peak-memory run,
                     in its own process; about 1 s, so --quick runs it too)
  --json <file>      also write the results as JSON
  -h, --help         this text
`;

let args;
try {
  args = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      size: { type: 'string' },
      reps: { type: 'string' },
      time: { type: 'string' },
      'stream-runs': { type: 'string' },
      pairs: { type: 'string' },
      'peer-size': { type: 'string' },
      only: { type: 'string' },
      cpu: { type: 'string' },
      'no-c': { type: 'boolean', default: false },
      'no-ts': { type: 'boolean', default: false },
      'no-stream': { type: 'boolean', default: false },
      'no-peers': { type: 'boolean', default: false },
      'no-memory': { type: 'boolean', default: false },
      json: { type: 'string' },
      'ts-worker': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (err) {
  process.stderr.write(`${err.message}\n\n${HELP}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const quick = args.quick;
const size = args.size !== undefined ? Math.round(Number(args.size) * MiB) : quick ? QUICK_SIZE : DEFAULT_SIZE;
if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) die(`--size must give a positive multiple of ${PAGE_SIZE} bytes`);
const reps = args.reps !== undefined ? Number(args.reps) : quick ? 1 : 4;
if (!Number.isSafeInteger(reps) || reps < 1) die('--reps must be a positive integer');
const jsMaxTime = args.time !== undefined ? Number(args.time) : quick ? 0.05 : 0.5;
const cSeconds = jsMaxTime;
if (!(jsMaxTime > 0)) die('--time must be a positive number');
const pairs = args.pairs !== undefined ? Number(args.pairs) : quick ? 3 : 40;
if (!Number.isSafeInteger(pairs) || pairs < 0) die('--pairs must be a non-negative integer');
const streamRuns = args['stream-runs'] !== undefined ? Number(args['stream-runs']) : quick ? 1 : 3;
if (!Number.isSafeInteger(streamRuns) || streamRuns < 1) die('--stream-runs must be a positive integer');
const peerSize = Math.min(size, args['peer-size'] !== undefined ? Math.round(Number(args['peer-size']) * MiB) : quick ? QUICK_SIZE : 16 * MiB);
if (!Number.isSafeInteger(peerSize) || peerSize <= 0 || peerSize % PAGE_SIZE !== 0) die(`--peer-size must give a positive multiple of ${PAGE_SIZE} bytes`);
let scenarios;
try {
  scenarios = selectScenarios(args.only ? args.only.split(',').map((s) => s.trim()).filter(Boolean) : []);
} catch (err) {
  die(err.message);
}
const cpu = args.cpu !== undefined ? Number(args.cpu) : null;
if (cpu !== null && (!Number.isSafeInteger(cpu) || cpu < 0 || cpu >= os.cpus().length)) {
  die(`--cpu must be a CPU number from 0 to ${os.cpus().length - 1}`);
}
const STREAM_RUN = 2 * MiB; // bytes per PageRecord written to the encoder
const STREAM_CACHE = 64 * MiB; // encoder page cache
const BLOCK = 'pc.ram';

function die(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- library

const distEntry = join(ROOT, 'dist', 'index.js');
if (!existsSync(distEntry)) die(`${relative(process.cwd(), distEntry)} not found: run \`npm run build\` first`);
const lib = await import(pathToFileURL(distEntry).href);
const { encodeXbzrle, decodeXbzrle, allocPages, freePages, XbzrleEncodeStream, XbzrleDecodeStream } = lib;

/** True when the SIMD kernel is in use in this process (allocPages then hands out shared kernel memory). */
function kernelActive() {
  const probe = allocPages(1);
  const active = probe.buffer instanceof SharedArrayBuffer;
  freePages(probe);
  return active;
}

// ---------------------------------------------------------------- helpers

/** Set when any check failed; decides the exit status. */
let failed = false;

/**
 * FNV-1a 64 over a byte array, on two 32-bit halves (hi, lo). The multiply
 * by 2^40 + 0x1b3 is split as lo*0x1b3 (exact in a double), hi*0x1b3 and
 * lo<<40 (which lands in the high word as lo<<8).
 */
function fnv1a64(bytes) {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let k = 0; k < bytes.length; k++) {
    lo = (lo ^ bytes[k]) >>> 0;
    const t = lo * 0x1b3;
    hi = (Math.imul(hi, 0x1b3) + Math.floor(t / 4294967296) + ((lo << 8) >>> 0)) >>> 0;
    lo = t >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** Measures `fn` with Benchmark.js; returns MB/s of `bytesPerCall` and the relative margin of error. */
function measure(name, fn, bytesPerCall, maxTime) {
  const bench = new Benchmark(name, fn, { maxTime, minSamples: quick ? 2 : 5, initCount: 1 });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  return { mbps: (bench.hz * bytesPerCall) / MB, rme: bench.stats.rme };
}

/** Keeps the best (max MB/s) of repeated measurements, with the margin of error of that best one. */
class Best {
  mbps = null;
  rme = null;
  all = [];
  add(m) {
    if (m === null || m === undefined) return;
    const mbps = typeof m === 'number' ? m : m.mbps;
    this.all.push(Math.round(mbps));
    if (this.mbps === null || mbps > this.mbps) {
      this.mbps = mbps;
      this.rme = typeof m === 'number' ? null : m.rme;
    }
  }
}

const fmt = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));
const fmtRatio = (a, b) => (a > 0 && b > 0 ? (a / b).toFixed(2) : 'n/a');
/** A paired ratio as "median (q1–q3)". */
const fmtSpread = (x) => (x ? `${x.median.toFixed(2)} (${x.q1.toFixed(2)}–${x.q3.toFixed(2)})` : 'n/a');
const ratio = (a, b) => (a > 0 && b > 0 ? a / b : null);
const log = (line) => process.stdout.write(`${line}\n`);

/** Page views of a buffer (prepared up front, so measured loops allocate nothing). */
function pageViews(buf) {
  const pages = buf.length / PAGE_SIZE;
  const views = new Array(pages);
  for (let i = 0; i < pages; i++) views[i] = buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
  return views;
}

/**
 * Untimed pass: encodes every page, collecting the output in the dump format
 * of baseline.c (per page: int32 LE result, then the delta bytes when > 0).
 * `outFor(i)` gives the output buffer of page i (dlen = 4096).
 */
function encodePass(oldViews, newViews, outFor) {
  const parts = [];
  let encodedBytes = 0;
  let unchanged = 0;
  let overflow = 0;
  let deltaPages = 0;
  for (let i = 0; i < oldViews.length; i++) {
    const out = outFor(i);
    const r = encodeXbzrle(oldViews[i], newViews[i], out);
    const le = Buffer.alloc(4);
    le.writeInt32LE(r, 0);
    parts.push(le);
    if (r > 0) {
      parts.push(Buffer.from(out.subarray(0, r)));
      encodedBytes += r;
      deltaPages++;
    } else if (r === 0) unchanged++;
    else overflow++;
  }
  const dump = Buffer.concat(parts);
  return { dump, hash: fnv1a64(dump), encodedBytes, unchanged, overflow, deltaPages };
}

/** Summary of an encode pass, as compared between the paths (C prints the same fields). */
const summary = (p) => ({ hash: p.hash, encodedBytes: p.encodedBytes, unchanged: p.unchanged, overflow: p.overflow, deltaPages: p.deltaPages });
const sameOutput = (a, b) =>
  a.hash === b.hash && a.encodedBytes === b.encodedBytes && a.unchanged === b.unchanged && a.overflow === b.overflow && a.deltaPages === b.deltaPages;
const describe = (p) => `hash ${p.hash} size ${p.encodedBytes} unchanged ${p.unchanged} overflow ${p.overflow}`;

// ---------------------------------------------------------------- TS worker (child process)

/**
 * The child side: this file run with --ts-worker and XBZRLE_WASM=0. Answers
 * the parent's messages: `load` (generate a scenario, encode it once, report
 * the output summary), `encode` (measure encodeXbzrle over all pages), `dump`
 * (write the last output in baseline.c's dump format to a file).
 */
function tsWorker() {
  let state = null;
  const handle = (msg) => {
    switch (msg.type) {
      case 'hello':
        return { kernel: kernelActive(), node: process.version };
      case 'load': {
        state = null;
        const scenario = selectScenarios([msg.scenario])[0];
        const { old: oldBuf, new: newBuf } = generate(scenario, msg.size);
        const oldViews = pageViews(oldBuf);
        const newViews = pageViews(newBuf);
        const out = new Uint8Array(PAGE_SIZE);
        const pass = encodePass(oldViews, newViews, () => out);
        state = { oldViews, newViews, out, dump: pass.dump, size: msg.size };
        return summary(pass);
      }
      case 'encode': {
        const { oldViews, newViews, out } = state;
        const pages = oldViews.length;
        let sink = 0;
        const m = measure(
          'TS encode',
          () => {
            let acc = 0;
            for (let i = 0; i < pages; i++) acc += encodeXbzrle(oldViews[i], newViews[i], out);
            sink ^= acc;
          },
          state.size,
          msg.maxTime,
        );
        return { ...m, sink };
      }
      case 'dump':
        writeFileSync(msg.path, state.dump);
        return {};
      default:
        throw new Error(`unknown message ${msg.type}`);
    }
  };
  process.on('message', (msg) => {
    try {
      process.send({ ok: true, ...handle(msg) });
    } catch (err) {
      process.send({ ok: false, error: String(err?.stack ?? err) });
    }
  });
}

/** The parent side of the TS worker: request/response over IPC. */
class TsChild {
  constructor() {
    this.child = fork(fileURLToPath(import.meta.url), ['--ts-worker'], {
      env: { ...process.env, XBZRLE_WASM: '0' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.exited = once(this.child, 'exit');
  }

  async call(msg) {
    const reply = Promise.race([
      once(this.child, 'message').then(([m]) => m),
      this.exited.then(([code]) => ({ ok: false, error: `TS worker exited (status ${code})` })),
    ]);
    this.child.send(msg);
    const m = await reply;
    if (!m.ok) throw new Error(`TS worker: ${m.error}`);
    return m;
  }

  close() {
    this.child.disconnect();
  }
}

// ---------------------------------------------------------------- C baseline

/** Compiles bench/baseline.c once; returns the binary path, or null with a notice when impossible. */
function buildBaseline() {
  if (args['no-c']) {
    log('C baseline: skipped (--no-c)');
    return null;
  }
  const cc = process.env.CC || 'cc';
  const src = join(HERE, 'baseline.c');
  const bin = join(BUILD, process.platform === 'win32' ? 'baseline.exe' : 'baseline');
  mkdirSync(BUILD, { recursive: true });
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return bin;
  const probe = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    log(`C baseline: skipped (no C compiler: \`${cc}\` not runnable; set CC to use another)`);
    return null;
  }
  const r = spawnSync(cc, ['-O2', '-std=c11', '-Wall', '-o', bin, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    // A compiler that cannot build the file is an environment problem, not a codec failure.
    log(`C baseline: skipped (compile failed with \`${cc} -O2\`):\n${r.stderr}`);
    return null;
  }
  if (r.stderr.trim()) log(r.stderr.trim());
  return bin;
}

const C_OLD = join(BUILD, 'old.bin');
const C_NEW = join(BUILD, 'new.bin');
const C_DUMP = join(BUILD, 'c-out.bin');

/** One run of the C program on the files written for the current scenario (with a dump when `dump`). */
function runBaseline(bin, dump) {
  const argv = [C_OLD, C_NEW, String(cSeconds)];
  if (dump) argv.push(C_DUMP);
  const r = spawnSync(bin, argv, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0 && r.status !== 1) throw new Error(`C baseline failed (status ${r.status}): ${r.stderr}`);
  const c = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  return { ...c, unchanged: c.unchangedPages, overflow: c.overflowPages };
}

/**
 * The C program in `--serve` mode on the current scenario's files: each
 * `sweeps(n)` has it encode every page n times and resolves with the
 * nanoseconds that took. Its buffers stay put between requests, like the
 * JavaScript side's.
 */
class CServer {
  constructor(bin) {
    this.waiting = [];
    this.text = '';
    this.child = spawn(bin, ['--serve', C_OLD, C_NEW], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      this.text += chunk;
      for (let nl = this.text.indexOf('\n'); nl >= 0; nl = this.text.indexOf('\n')) {
        const line = this.text.slice(0, nl);
        this.text = this.text.slice(nl + 1);
        this.waiting.shift()?.resolve(Number(line));
      }
    });
    const fail = (err) => {
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    this.child.on('error', fail);
    this.child.on('exit', (code) => fail(new Error(`C baseline --serve exited (status ${code})`)));
  }

  sweeps(n) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(`${n}\n`);
    });
  }

  close() {
    this.child.stdin.end();
  }
}

/** The p-quantile (0..1) of numbers, linearly interpolated. */
function quantile(values, p) {
  const v = [...values].sort((a, b) => a - b);
  const at = (v.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, v.length - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - lo);
}

const spread = (values) => ({ median: quantile(values, 0.5), q1: quantile(values, 0.25), q3: quantile(values, 0.75) });

/**
 * Paired samples: C, SIMD on ordinary buffers and SIMD on allocPages memory
 * take turns (the order rotates every pair), each sample `sweeps` passes over
 * all pages, so the samples of one pair lie milliseconds apart and share the
 * machine's state of that moment. Returns the median and quartiles of the
 * per-pair ratios (C time ÷ SIMD time, i.e. SIMD MB/s ÷ C MB/s) and each
 * side's median MB/s.
 */
async function pairedBench(bin, encodeOrdinary, encodeAlloc) {
  const sweeps = Math.max(1, Math.round(DEFAULT_SIZE / size));
  const timeJs = (fn) => {
    const t0 = performance.now();
    for (let k = 0; k < sweeps; k++) fn();
    return (performance.now() - t0) * 1e6;
  };
  const server = new CServer(bin);
  try {
    const sides = [
      { name: 'c', sample: () => server.sweeps(sweeps), ns: [] },
      { name: 'simd', sample: async () => timeJs(encodeOrdinary), ns: [] },
      { name: 'alloc', sample: async () => timeJs(encodeAlloc), ns: [] },
    ];
    for (const side of sides) await side.sample(); // warm-up, untimed
    for (let k = 0; k < pairs; k++) {
      for (let j = 0; j < sides.length; j++) {
        const side = sides[(k + j) % sides.length];
        side.ns.push(await side.sample());
      }
    }
    const [c, simd, alloc] = sides.map((x) => x.ns);
    const mbps = (ns) => (sweeps * size) / (ns / 1e9) / MB;
    return {
      pairs,
      sweepsPerSample: sweeps,
      simdOverC: spread(c.map((t, k) => t / simd[k])),
      allocOverC: spread(c.map((t, k) => t / alloc[k])),
      cMedianMBps: mbps(quantile(c, 0.5)),
      simdMedianMBps: mbps(quantile(simd, 0.5)),
      allocMedianMBps: mbps(quantile(alloc, 0.5)),
      ns: { c: c.map(Math.round), simd: simd.map(Math.round), alloc: alloc.map(Math.round) },
    };
  } finally {
    server.close();
  }
}

/** Locates the first page where two dumps (baseline.c's format) differ and saves a reproducer. */
function reportFirstDifference(scenario, oldBuf, newBuf, labelA, dumpA, labelB, dumpB) {
  let pa = 0;
  let pb = 0;
  for (let page = 0; pa < dumpA.length && pb < dumpB.length; page++) {
    const ra = dumpA.readInt32LE(pa);
    const rb = dumpB.readInt32LE(pb);
    const da = ra > 0 ? dumpA.subarray(pa + 4, pa + 4 + ra) : Buffer.alloc(0);
    const db = rb > 0 ? dumpB.subarray(pb + 4, pb + 4 + rb) : Buffer.alloc(0);
    pa += 4 + Math.max(ra, 0);
    pb += 4 + Math.max(rb, 0);
    if (ra !== rb || Buffer.compare(da, db) !== 0) {
      const at = page * PAGE_SIZE;
      const base = join(BUILD, `mismatch-${scenario.name}-page${page}`);
      writeFileSync(`${base}.old.bin`, oldBuf.subarray(at, at + PAGE_SIZE));
      writeFileSync(`${base}.new.bin`, newBuf.subarray(at, at + PAGE_SIZE));
      writeFileSync(`${base}.${labelA}.bin`, da);
      writeFileSync(`${base}.${labelB}.bin`, db);
      log(`  first difference at page ${page} (buffer offset ${at}): ${labelA} returned ${ra}, ${labelB} returned ${rb}`);
      log(`  reproducer: ${relative(process.cwd(), base)}.{old,new}.bin (the pages), .${labelA}.bin / .${labelB}.bin (the deltas)`);
      const rel = relative(ROOT, base);
      log('  reproduce (from the package root, after npm run build; XBZRLE_WASM=0 for the TS path):');
      log(
        `  node --input-type=module -e "import { encodeXbzrle } from './dist/index.js'; import { readFileSync as r } from 'node:fs';` +
          ` const out = new Uint8Array(${PAGE_SIZE}); const n = encodeXbzrle(r('${rel}.old.bin'), r('${rel}.new.bin'), out);` +
          ` console.log(n, Buffer.from(out.subarray(0, Math.max(n, 0))).toString('hex'))"`,
      );
      return;
    }
  }
  log('  per-page outputs agree; the difference is in the summary computation');
}

// ---------------------------------------------------------------- codec benchmark

async function codecBench(scenario, oldBuf, newBuf, bin, ts) {
  const pages = size / PAGE_SIZE;
  const oldViews = pageViews(oldBuf);
  const newViews = pageViews(newBuf);
  const out = new Uint8Array(PAGE_SIZE); // dlen = 4096, as QEMU's sender

  // The same pages in the kernel's memory (allocPages), and an output page there too.
  const oldA = allocPages(pages);
  const newA = allocPages(pages);
  const outA = allocPages(1);
  oldA.set(oldBuf);
  newA.set(newBuf);
  const oldAViews = pageViews(oldA);
  const newAViews = pageViews(newA);
  // For the memcmp reference: Buffer.compare of two identical copies of the old pages reads both entirely.
  const oldB = oldViews.map((v) => Buffer.from(v.buffer, v.byteOffset, PAGE_SIZE));
  const oldAB = oldAViews.map((v) => Buffer.from(v.buffer, v.byteOffset, PAGE_SIZE));

  let workA = null;
  try {
    // ---- Outputs of every path, checked against C and against each other.
    const outputs = [];
    if (bin) {
      writeFileSync(C_OLD, oldBuf);
      writeFileSync(C_NEW, newBuf);
    }
    const c = bin ? runBaseline(bin, true) : null;
    if (c) {
      outputs.push({ label: 'C', ...c });
      if (c.roundtripErrors > 0) {
        failed = true;
        log(`C ROUNDTRIP FAILURE ${scenario.name}: ${c.roundtripErrors} page(s) (bug in bench/baseline.c)`);
      }
    }
    if (ts) outputs.push({ label: 'TS', ...(await ts.call({ type: 'load', scenario: scenario.name, size })) });
    // SIMD on ordinary buffers; the deltas are kept for the decoder.
    const deltaArena = new Uint8Array(size);
    const simd = encodePass(oldViews, newViews, (i) => deltaArena.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    outputs.push({ label: 'SIMD', ...summary(simd), dump: simd.dump });
    const simdA = encodePass(oldAViews, newAViews, () => outA);
    outputs.push({ label: 'SIMD-alloc', ...summary(simdA), dump: simdA.dump });

    const ref = outputs[0];
    const bad = outputs.filter((o) => !sameOutput(o, ref));
    let match = `identical (${outputs.map((o) => o.label).join(', ')})`;
    if (bad.length > 0) {
      failed = true;
      match = `MISMATCH (${bad.map((o) => o.label).join(', ')} vs ${ref.label})`;
      log(`MISMATCH ${scenario.name}: ${ref.label} ${describe(ref)}`);
      const dumpOf = async (o) => {
        if (o.dump) return o.dump;
        if (o.label === 'C') return readFileSync(C_DUMP);
        const path = join(BUILD, 'ts-out.bin');
        await ts.call({ type: 'dump', path });
        const d = readFileSync(path);
        rmSync(path, { force: true });
        return d;
      };
      const refDump = await dumpOf(ref);
      for (const o of bad) {
        log(`MISMATCH ${scenario.name}: ${o.label} ${describe(o)}`);
        reportFirstDifference(scenario, oldBuf, newBuf, ref.label, refDump, o.label, await dumpOf(o));
      }
    }

    // ---- Round trip: each delta applied to a copy of the old page gives the new page.
    const work = new Uint8Array(oldBuf);
    const deltaViews = [];
    const workViews = [];
    const deltaPageIdx = [];
    {
      let pos = 0;
      for (let i = 0; i < pages; i++) {
        const r = simd.dump.readInt32LE(pos);
        pos += 4 + Math.max(r, 0);
        if (r > 0) {
          deltaViews.push(deltaArena.subarray(i * PAGE_SIZE, i * PAGE_SIZE + r));
          workViews.push(work.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
          deltaPageIdx.push(i);
        }
      }
    }
    // The same with the pages in allocPages memory (decodeXbzrle then decodes in the kernel's memory, in place).
    workA = allocPages(pages);
    workA.set(oldBuf);
    const workAViews = deltaPageIdx.map((i) => workA.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    let roundTripErrors = 0;
    for (let k = 0; k < deltaViews.length; k++) {
      const want = decodeXbzrle(deltaViews[k], workViews[k]);
      if (Buffer.compare(workViews[k], newViews[deltaPageIdx[k]]) !== 0) roundTripErrors++;
      if (decodeXbzrle(deltaViews[k], workAViews[k]) !== want || Buffer.compare(workAViews[k], newViews[deltaPageIdx[k]]) !== 0) roundTripErrors++;
    }
    if (roundTripErrors > 0) {
      failed = true;
      log(`ROUNDTRIP FAILURE ${scenario.name}: ${roundTripErrors} page(s) differ after decodeXbzrle(encodeXbzrle(old, new), old)`);
    }

    // ---- Timed loops.
    let sink = 0;
    const encodeOrdinary = () => {
      let acc = 0;
      for (let i = 0; i < pages; i++) acc += encodeXbzrle(oldViews[i], newViews[i], out);
      sink ^= acc;
    };
    const encodeAlloc = () => {
      let acc = 0;
      for (let i = 0; i < pages; i++) acc += encodeXbzrle(oldAViews[i], newAViews[i], outA);
      sink ^= acc;
    };
    // Applying a delta again to a page that already holds the new bytes does the same work: no copy is timed.
    const nDeltas = deltaViews.length;
    const decodeAll = () => {
      let acc = 0;
      for (let k = 0; k < nDeltas; k++) acc += decodeXbzrle(deltaViews[k], workViews[k]);
      sink ^= acc;
    };
    const decodeAllocAll = () => {
      let acc = 0;
      for (let k = 0; k < nDeltas; k++) acc += decodeXbzrle(deltaViews[k], workAViews[k]);
      sink ^= acc;
    };
    const compareAll = () => {
      let acc = 0;
      for (let i = 0; i < pages; i++) acc += Buffer.compare(oldB[i], oldAB[i]);
      sink ^= acc;
    };

    const best = { c: new Best(), cDec: new Best(), ts: new Best(), simd: new Best(), alloc: new Best(), cmp: new Best(), dec: new Best(), decA: new Best() };
    for (let rep = 0; rep < reps; rep++) {
      if (bin) {
        const cr = rep === 0 ? c : runBaseline(bin, false);
        best.c.add(cr.encodeMBps);
        if (cr.deltaPages > 0) best.cDec.add(cr.decodeMBps);
      }
      if (ts) best.ts.add(await ts.call({ type: 'encode', maxTime: jsMaxTime }));
      best.simd.add(measure(`SIMD encode ${scenario.name}`, encodeOrdinary, size, jsMaxTime));
      best.alloc.add(measure(`SIMD-alloc encode ${scenario.name}`, encodeAlloc, size, jsMaxTime));
      best.cmp.add(measure(`memcmp ${scenario.name}`, compareAll, size, jsMaxTime));
      if (nDeltas > 0) best.dec.add(measure(`decode ${scenario.name}`, decodeAll, nDeltas * PAGE_SIZE, jsMaxTime));
      if (nDeltas > 0) best.decA.add(measure(`decode-alloc ${scenario.name}`, decodeAllocAll, nDeltas * PAGE_SIZE, jsMaxTime));
    }
    const paired = bin && pairs > 0 ? await pairedBench(bin, encodeOrdinary, encodeAlloc) : null;
    if (sink === 0.5) log(''); // keep `sink` observable

    for (let k = 0; k < nDeltas; k++) {
      if (Buffer.compare(workViews[k], newViews[deltaPageIdx[k]]) !== 0 || Buffer.compare(workAViews[k], newViews[deltaPageIdx[k]]) !== 0) {
        failed = true;
        log(`DECODE LOOP FAILURE ${scenario.name}: page ${deltaPageIdx[k]} differs after the timed decode loop`);
        break;
      }
    }

    return {
      row: {
        scenario: scenario.name,
        description: scenario.description,
        pages,
        encodedBytes: simd.encodedBytes,
        encodedPct: (100 * simd.encodedBytes) / size,
        deltaPages: simd.deltaPages,
        unchangedPages: simd.unchanged,
        overflowPages: simd.overflow,
        hash: simd.hash,
        tsEncodeMBps: best.ts.mbps,
        simdEncodeMBps: best.simd.mbps,
        allocEncodeMBps: best.alloc.mbps,
        cEncodeMBps: best.c.mbps,
        memcmpMBps: best.cmp.mbps,
        decodeMBps: best.dec.mbps,
        allocDecodeMBps: best.decA.mbps,
        cDecodeMBps: best.cDec.mbps,
        paired,
        runs: Object.fromEntries(Object.entries(best).map(([k, b]) => [k, b.all])),
        match,
      },
      oldA,
      newA,
    };
  } finally {
    freePages(outA);
    if (workA) freePages(workA);
    if (bin) for (const f of [C_OLD, C_NEW, C_DUMP]) rmSync(f, { force: true });
  }
}

// ---------------------------------------------------------------- stream benchmark

/** Writes `buf` to the encoder as PageRecords of STREAM_RUN bytes, honouring backpressure. */
async function writeRuns(enc, buf) {
  for (let off = 0; off < buf.length; off += STREAM_RUN) {
    const data = buf.subarray(off, Math.min(off + STREAM_RUN, buf.length));
    if (!enc.write({ block: BLOCK, offset: off, data })) await once(enc, 'drain');
  }
}

/** Writes byte chunks to the decoder, honouring backpressure; resolves when the last one was processed. */
async function writeChunks(dec, chunks) {
  for (let k = 0; k < chunks.length; k++) {
    if (k === chunks.length - 1) {
      await new Promise((resolve, reject) => dec.write(chunks[k], (err) => (err ? reject(err) : resolve())));
    } else if (!dec.write(chunks[k])) {
      await once(dec, 'drain');
    }
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** One encode round 1 (untimed) + round 2 (timed); returns the stream bytes of both rounds and the timing. */
async function encodeStreamOnce(oldBuf, newBuf) {
  const enc = new XbzrleEncodeStream({ cacheSize: STREAM_CACHE, blocks: [{ id: BLOCK, length: size }] });
  const round1 = [];
  const round2 = [];
  let target = round1;
  let round2Bytes = 0;
  enc.on('data', (chunk) => {
    target.push(chunk);
    if (target === round2) round2Bytes += chunk.length;
  });
  const ended = once(enc, 'end');
  await writeRuns(enc, oldBuf);
  await new Promise((resolve, reject) => enc.sync((err) => (err ? reject(err) : resolve())));
  while (enc.readableLength > 0 || enc.writableLength > 0) await tick();
  await tick();
  target = round2;
  const t0 = performance.now();
  await writeRuns(enc, newBuf);
  enc.end();
  await ended;
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, round1, round2, round2Bytes, stats: enc.stats };
}

/** Decodes round 1 (untimed) then round 2 (timed) into a default MemoryPageStore. */
async function decodeStreamOnce(round1, round2) {
  const dec = new XbzrleDecodeStream({ emitPages: false });
  dec.resume();
  const finished = once(dec, 'end');
  await writeChunks(dec, round1);
  const r = dec.stats.records;
  const before = r.PAGE + r.ZERO + r.XBZRLE;
  const t0 = performance.now();
  for (const chunk of round2) if (!dec.write(chunk)) await once(dec, 'drain');
  dec.end();
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  const pageRecords = r.PAGE + r.ZERO + r.XBZRLE - before;
  return { seconds, pageRecords, store: dec.store };
}

const concat = (chunks) => Buffer.concat(chunks);

async function streamBench(scenario, oldBuf, newBuf, oldA, newA) {
  const enc = new Best();
  const encA = new Best();
  const dec = new Best();
  let last = null;
  let allocSame = true;
  // Run 0 is an untimed warm-up, so the first scenario is not measured on cold (unoptimised) stream code.
  for (let run = 0; run <= streamRuns; run++) {
    const e = await encodeStreamOnce(oldBuf, newBuf);
    const ea = await encodeStreamOnce(oldA, newA);
    const d = await decodeStreamOnce(e.round1, e.round2);
    // Both record sources must give the same bytes.
    if (Buffer.compare(concat(e.round1), concat(ea.round1)) !== 0 || Buffer.compare(concat(e.round2), concat(ea.round2)) !== 0) allocSame = false;
    if (run > 0) {
      enc.add(size / e.seconds / MB);
      encA.add(size / ea.seconds / MB);
      if (d.pageRecords > 0) dec.add((d.pageRecords * PAGE_SIZE) / d.seconds / MB);
    }
    last = { e, d };
  }
  // The receiver's image must equal the new buffer.
  const image = last.d.store.read(BLOCK);
  const imageOk = image.length === newBuf.length && Buffer.compare(image, newBuf) === 0;
  if (!imageOk) {
    failed = true;
    let at = 0;
    while (at < Math.min(image.length, newBuf.length) && image[at] === newBuf[at]) at++;
    log(`STREAM FAILURE ${scenario.name}: decoded image differs from the new buffer (first at byte ${at}, page ${Math.floor(at / PAGE_SIZE)})`);
  }
  if (!allocSame) {
    failed = true;
    log(`STREAM MISMATCH ${scenario.name}: the stream output differs between ordinary and allocPages record data`);
  }
  const s = last.e.stats;
  return {
    scenario: scenario.name,
    encodeMBps: enc.mbps,
    allocEncodeMBps: encA.mbps,
    round2StreamBytes: last.e.round2Bytes,
    round2StreamPct: (100 * last.e.round2Bytes) / size,
    round2PageRecords: last.d.pageRecords,
    decodeMBps: dec.mbps,
    runs: { encode: enc.all, allocEncode: encA.all, decode: dec.all },
    records: { PAGE: s.records.PAGE, ZERO: s.records.ZERO, XBZRLE: s.records.XBZRLE, EOS: s.records.EOS },
    overflow: s.overflow,
    ok: imageOk && allocSame,
  };
}

// ---------------------------------------------------------------- memory

/** Runs bench/memory.mjs in its own process; returns its JSON result or null. */
function memoryBench() {
  const r = spawnSync(process.execPath, ['--expose-gc', join(HERE, 'memory.mjs'), '--json'], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.error) throw r.error;
  const lines = r.stdout.trim().split('\n');
  for (const line of lines.slice(0, -1)) log(line);
  if (r.status !== 0) {
    failed = true;
    log(`MEMORY BENCH FAILURE: bench/memory.mjs exited with status ${r.status}`);
    return null;
  }
  return JSON.parse(lines[lines.length - 1]);
}

// ---------------------------------------------------------------- main

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
  };
}

/** --cpu: moves every thread of this process to one CPU; children started later inherit it. */
function pinToCpu(n) {
  if (process.platform !== 'linux') die('--cpu needs Linux (taskset)');
  const r = spawnSync('taskset', ['--all-tasks', '--pid', '--cpu-list', String(n), String(process.pid)], { encoding: 'utf8' });
  if (r.error || r.status !== 0) die(`--cpu: taskset failed: ${r.error?.message ?? r.stderr.trim()}`);
}

async function main() {
  if (cpu !== null) pinToCpu(cpu);
  const m = machine();
  const simdOn = kernelActive();
  log(`xbzrle bench: ${quick ? 'quick, ' : ''}${size / MiB} MiB per scenario, ${PAGE_SIZE}-byte pages, dlen ${PAGE_SIZE}`);
  log(`machine: ${m.cpu} x${m.cpus}, node ${m.node} (V8 ${m.v8}), ${m.platform}`);
  log(
    `timing: ${reps} interleaved round(s) per scenario [C, TS, SIMD, SIMD-alloc, memcmp, decode, decode-alloc], best of each kept;` +
      ` Benchmark.js maxTime ${jsMaxTime}s per JS measurement, C ${cSeconds}s per loop; streams best of ${streamRuns}`,
  );
  if (pairs > 0) log(`paired: ${pairs} rotating turns of [C, SIMD, SIMD-alloc] per scenario, one sample each; the median per-pair ratio is reported`);
  if (cpu !== null) log(`pinned: this process, its threads and its children on CPU ${cpu} (taskset)`);
  log(`SIMD kernel in this process: ${simdOn ? 'active' : 'NOT AVAILABLE (the SIMD columns measure the TypeScript path)'}`);
  const bin = buildBaseline();
  let ts = null;
  if (!args['no-ts']) {
    ts = new TsChild();
    const hello = await ts.call({ type: 'hello' });
    log(`TS path: child process with XBZRLE_WASM=0 (kernel ${hello.kernel ? 'STILL ACTIVE: the TS column is not the TS path' : 'off, verified'})`);
  }
  const peers = args['no-peers'] ? null : await loadPeers();
  if (peers) {
    for (const name of PEER_NAMES) if (!peers[name]) log(`peer ${name}: skipped (run npm run bench:peers)`);
  }

  const codecRows = [];
  const streamRows = [];
  const peerRows = [];
  try {
    for (const scenario of scenarios) {
      const t = performance.now();
      const { old: oldBuf, new: newBuf } = generate(scenario, size);
      const { row, oldA, newA } = await codecBench(scenario, oldBuf, newBuf, bin, ts);
      codecRows.push(row);
      log(
        `${scenario.name.padEnd(10)} encode TS ${fmt(row.tsEncodeMBps)} | SIMD ${fmt(row.simdEncodeMBps)} | SIMD-alloc ${fmt(row.allocEncodeMBps)}` +
          ` | C ${fmt(row.cEncodeMBps)} | memcmp ${fmt(row.memcmpMBps)} | decode ${fmt(row.decodeMBps)} | decode-alloc ${fmt(row.allocDecodeMBps)} MB/s | size ${fmt(row.encodedPct, 2)}% | ${row.match}`,
      );
      if (row.paired) {
        const p = row.paired;
        log(
          `${''.padEnd(10)} paired (${p.pairs}): SIMD/C ${fmtSpread(p.simdOverC)} | SIMD-alloc/C ${fmtSpread(p.allocOverC)}` +
            ` | medians C ${fmt(p.cMedianMBps)}, SIMD ${fmt(p.simdMedianMBps)}, SIMD-alloc ${fmt(p.allocMedianMBps)} MB/s`,
        );
      }
      try {
        if (!args['no-stream']) {
          const srow = await streamBench(scenario, oldBuf, newBuf, oldA, newA);
          srow.codecMBps = row.simdEncodeMBps;
          srow.allocCodecMBps = row.allocEncodeMBps;
          streamRows.push(srow);
          log(
            `${''.padEnd(10)} stream encode ${fmt(srow.encodeMBps)} | alloc ${fmt(srow.allocEncodeMBps)} | stream decode ${fmt(srow.decodeMBps)} MB/s` +
              ` | round-2 stream ${fmt(srow.round2StreamPct, 2)}% | ${srow.ok ? 'ok' : 'FAILED'}`,
          );
        }
      } finally {
        freePages(oldA);
        freePages(newA);
      }
      if (peers) {
        const prow = peerBench(peers, oldBuf.subarray(0, peerSize), newBuf.subarray(0, peerSize), { quick, maxTime: jsMaxTime });
        if (prow.failures.length > 0) {
          failed = true;
          for (const f of prow.failures) log(`PEER ROUNDTRIP FAILURE ${scenario.name}: ${f}`);
        }
        // What XBZRLE puts on the wire for these pages: the deltas, plus whole pages where the delta overflowed.
        const wirePct = (100 * (row.encodedBytes + row.overflowPages * PAGE_SIZE)) / size;
        peerRows.push({ scenario: scenario.name, xbzrleWirePct: wirePct, simdEncodeMBps: row.simdEncodeMBps, ...prow.results });
        log(`${''.padEnd(10)} peers ${PEER_NAMES.map((n) => `${n} ${prow.results[n] ? `${fmt(prow.results[n].mbps)} MB/s ${fmt(prow.results[n].pct, 2)}%` : 'skipped'}`).join(' | ')}`);
      }
      log(`${''.padEnd(10)} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
    }
  } finally {
    ts?.close();
  }

  let memory = null;
  if (!args['no-memory']) {
    log('');
    log('memory: node --expose-gc bench/memory.mjs');
    memory = memoryBench();
  }

  printTables({ codecRows, streamRows, peerRows, peers, memory });

  if (args.json) {
    writeFileSync(
      args.json,
      `${JSON.stringify({ machine: m, size, quick, reps, simd: simdOn, codec: codecRows, streams: streamRows, peers: peerRows, memory }, null, 2)}\n`,
    );
  }
  if (failed) {
    log('bench: FAILED (see MISMATCH / FAILURE lines above)');
    process.exitCode = 1;
  } else {
    log('bench: all outputs verified');
  }
}

function printTables({ codecRows, streamRows, peerRows, peers, memory }) {
  log('');
  log(
    `### Codec, ${size / MiB} MiB of ${PAGE_SIZE}-byte pages per scenario (MB/s = 10^6 bytes/s; best of ${reps} interleaved round(s)` +
      `${pairs > 0 ? `; paired: median (quartiles) of ${pairs} per-pair ratios` : ''})`,
  );
  log('');
  log(
    '| scenario | encoded % | overflow pages | TS encode | SIMD encode (buffers) | SIMD encode (allocPages) | C encode | TS/C | SIMD/C | SIMD-alloc/C' +
      ' | SIMD/C paired | SIMD-alloc/C paired' +
      ' | memcmp | SIMD/memcmp | SIMD-alloc/memcmp | decode (buffers) | decode (allocPages) | C decode | output |',
  );
  log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|');
  for (const r of codecRows) {
    log(
      `| ${r.scenario} | ${fmt(r.encodedPct, 2)} | ${r.overflowPages} | ${fmt(r.tsEncodeMBps)} | ${fmt(r.simdEncodeMBps)} | ${fmt(r.allocEncodeMBps)}` +
        ` | ${fmt(r.cEncodeMBps)} | ${fmtRatio(r.tsEncodeMBps, r.cEncodeMBps)} | **${fmtRatio(r.simdEncodeMBps, r.cEncodeMBps)}** | **${fmtRatio(r.allocEncodeMBps, r.cEncodeMBps)}**` +
        ` | **${fmtSpread(r.paired?.simdOverC)}** | **${fmtSpread(r.paired?.allocOverC)}**` +
        ` | ${fmt(r.memcmpMBps)} | ${fmtRatio(r.simdEncodeMBps, r.memcmpMBps)} | ${fmtRatio(r.allocEncodeMBps, r.memcmpMBps)}` +
        ` | ${fmt(r.decodeMBps)} | ${fmt(r.allocDecodeMBps)} | ${fmt(r.cDecodeMBps)} | ${r.match} |`,
    );
  }
  if (streamRows.length > 0) {
    log('');
    log(`### Streams, round 2 of ${size / MiB} MiB (${STREAM_RUN / MiB} MiB PageRecords, ${STREAM_CACHE / MiB} MiB cache; best of ${streamRuns})`);
    log('');
    log(
      '| scenario | XbzrleEncodeStream (buffers) | ÷ SIMD codec (buffers) | XbzrleEncodeStream (allocPages) | ÷ SIMD codec (allocPages)' +
        ' | round-2 stream % | page records | XbzrleDecodeStream | check |',
    );
    log('|---|--:|--:|--:|--:|--:|--:|--:|---|');
    for (const r of streamRows) {
      log(
        `| ${r.scenario} | ${fmt(r.encodeMBps)} | **${fmtRatio(r.encodeMBps, r.codecMBps)}** | ${fmt(r.allocEncodeMBps)} | **${fmtRatio(r.allocEncodeMBps, r.allocCodecMBps)}**` +
          ` | ${fmt(r.round2StreamPct, 2)} | ${r.round2PageRecords} | ${fmt(r.decodeMBps)} | ${r.ok ? 'ok' : 'FAILED'} |`,
      );
    }
  }
  if (peerRows.length > 0) {
    log('');
    log(`### Peers: XOR of old and new page, then one compressor call per page (first ${peerSize / MiB} MiB of each scenario)`);
    log('');
    log(`| scenario | XBZRLE size % | XBZRLE SIMD encode (buffers) | ${PEER_NAMES.map((n) => `${n} MB/s | ${n} size %`).join(' | ')} |`);
    log(`|---|--:|--:|${PEER_NAMES.map(() => '--:|--:|').join('')}`);
    for (const r of peerRows) {
      const cells = PEER_NAMES.map((n) => (r[n] ? `${fmt(r[n].mbps)} | ${fmt(r[n].pct, 2)}` : 'skipped | skipped'));
      log(`| ${r.scenario} | ${fmt(r.xbzrleWirePct, 2)} | ${fmt(r.simdEncodeMBps)} | ${cells.join(' | ')} |`);
    }
    const missing = PEER_NAMES.filter((n) => !peers[n]);
    if (missing.length > 0) log(`\n${missing.join(', ')}: skipped (run npm run bench:peers)`);
  }
  if (memory) {
    log('');
    log('### Peak memory (bench/memory.mjs)');
    log('');
    log('| input | cache | peak RSS − baseline (sampled) | peak RSS − baseline (VmHWM) | target | encode MB/s | time |');
    log('|---|--:|--:|--:|--:|--:|--:|');
    log(
      `| ${memory.description} | ${memory.cacheMiB} MiB | ${fmt(memory.peakDeltaMiB, 1)} MiB | ${fmt(memory.hwmDeltaMiB, 1)} MiB` +
        ` | < ${memory.targetMiB} MiB (${Math.max(memory.peakDeltaMiB, memory.hwmDeltaMiB ?? 0) < memory.targetMiB ? 'met' : 'NOT met'}) | ${fmt(memory.mbps)} | ${fmt(memory.seconds, 1)} s |`,
    );
  }
  log('');
}

if (args['ts-worker']) {
  tsWorker();
} else {
  main().catch((err) => {
    process.stderr.write(`bench: crashed: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  });
}
