#!/usr/bin/env node
// XBZRLE benchmark harness.
//
//   npm run build && node bench/run.mjs [--quick] [options]
//
// Plain ESM JavaScript importing the built package (../dist/index.js), so it
// runs under plain `node` with no TypeScript step. See bench/README.md.
//
// Exit status: 0 when every check passed, 1 on a TS/C mismatch, a failed
// round trip or a crash. Speed never affects the exit status.

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Benchmark from 'benchmark';
import { DEFAULT_SIZE, PAGE_SIZE, QUICK_SIZE, generate, selectScenarios } from './scenarios.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const BUILD = join(HERE, '.build');
const MiB = 1024 * 1024;
/** MB/s here means 1e6 bytes of page data per second. */
const MB = 1e6;

// ---------------------------------------------------------------- options

const HELP = `usage: node bench/run.mjs [options]

  --quick            small buffers (4 MiB) and short timings; a CI smoke test
  --size <MiB>       buffer size per scenario (default 64, quick 4)
  --time <seconds>   Benchmark.js maxTime per JS measurement and C loop time
                     (default 2 for JS / 0.75 for C; quick 0.1 / 0.05)
  --stream-runs <n>  timed repetitions of each stream measurement, after one
                     untimed warm-up; median reported (default 3, quick 1)
  --only <names>     comma-separated scenario names (e.g. SPARSE,DENSE)
  --no-c             skip the C baseline
  --no-stream        skip the stream measurements
  --json <file>      also write the results as JSON
  -h, --help         this text
`;

let args;
try {
  args = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      size: { type: 'string' },
      time: { type: 'string' },
      'stream-runs': { type: 'string' },
      only: { type: 'string' },
      'no-c': { type: 'boolean', default: false },
      'no-stream': { type: 'boolean', default: false },
      json: { type: 'string' },
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
const jsMaxTime = args.time !== undefined ? Number(args.time) : quick ? 0.1 : 2;
const cSeconds = args.time !== undefined ? Number(args.time) : quick ? 0.05 : 0.75;
if (!(jsMaxTime > 0) || !(cSeconds > 0)) die('--time must be a positive number');
const streamRuns = args['stream-runs'] !== undefined ? Number(args['stream-runs']) : quick ? 1 : 3;
if (!Number.isSafeInteger(streamRuns) || streamRuns < 1) die('--stream-runs must be a positive integer');
const scenarios = selectScenarios(args.only ? args.only.split(',').map((s) => s.trim()).filter(Boolean) : []);
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
const { encodeXbzrle, decodeXbzrle, XbzrleEncodeStream, XbzrleDecodeStream, MemoryPageStore } = lib;

// ---------------------------------------------------------------- helpers

/** Set when any check failed; decides the exit status. */
let failed = false;

/**
 * FNV-1a 64 over a sequence of byte arrays, on two 32-bit halves
 * (hi, lo). The multiply by 2^40 + 0x1b3 is split as lo*0x1b3 (exact in a
 * double), hi*0x1b3 and lo<<40 (which lands in the high word as lo<<8).
 */
function fnv1a64(chunks) {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const bytes of chunks) {
    for (let k = 0; k < bytes.length; k++) {
      lo = (lo ^ bytes[k]) >>> 0;
      const t = lo * 0x1b3;
      hi = (Math.imul(hi, 0x1b3) + Math.floor(t / 4294967296) + ((lo << 8) >>> 0)) >>> 0;
      lo = t >>> 0;
    }
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** Measures `fn` with Benchmark.js; returns MB/s of `bytesPerCall` and the relative margin of error. */
function measure(name, fn, bytesPerCall) {
  const bench = new Benchmark(name, fn, {
    maxTime: jsMaxTime,
    minSamples: quick ? 2 : 5,
    initCount: 1,
  });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  return { mbps: (bench.hz * bytesPerCall) / MB, rme: bench.stats.rme, samples: bench.stats.sample.length };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));
const fmtRatio = (a, b) => (a > 0 && b > 0 ? (a / b).toFixed(2) : 'n/a');
const log = (line) => process.stdout.write(`${line}\n`);

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

function runBaseline(bin, oldBuf, newBuf) {
  const oldPath = join(BUILD, 'old.bin');
  const newPath = join(BUILD, 'new.bin');
  const dumpPath = join(BUILD, 'c-out.bin');
  writeFileSync(oldPath, oldBuf);
  writeFileSync(newPath, newBuf);
  const r = spawnSync(bin, [oldPath, newPath, String(cSeconds), dumpPath], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0 && r.status !== 1) throw new Error(`C baseline failed (status ${r.status}): ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const result = JSON.parse(line);
  result.dumpPath = dumpPath;
  return result;
}

// ---------------------------------------------------------------- codec benchmark

function codecBench(scenario, oldBuf, newBuf, baseline) {
  const pages = size / PAGE_SIZE;
  // Views prepared up front, so the measured loops allocate nothing.
  const oldViews = new Array(pages);
  const newViews = new Array(pages);
  const oldB = new Array(pages);
  const newB = new Array(pages);
  for (let i = 0; i < pages; i++) {
    const at = i * PAGE_SIZE;
    oldViews[i] = oldBuf.subarray(at, at + PAGE_SIZE);
    newViews[i] = newBuf.subarray(at, at + PAGE_SIZE);
    oldB[i] = Buffer.from(oldBuf.buffer, oldBuf.byteOffset + at, PAGE_SIZE);
    newB[i] = Buffer.from(newBuf.buffer, newBuf.byteOffset + at, PAGE_SIZE);
  }
  const out = new Uint8Array(PAGE_SIZE); // dlen = 4096, as QEMU's sender

  // Untimed pass: every delta, kept for the decoder and for the C comparison.
  const deltaArena = new Uint8Array(size);
  const results = new Int32Array(pages);
  const dumpParts = [];
  let encodedBytes = 0;
  let unchanged = 0;
  let overflow = 0;
  const deltaViews = [];
  const deltaPages = [];
  for (let i = 0; i < pages; i++) {
    const at = i * PAGE_SIZE;
    const r = encodeXbzrle(oldViews[i], newViews[i], deltaArena.subarray(at, at + PAGE_SIZE));
    results[i] = r;
    const le = new Uint8Array(4);
    new DataView(le.buffer).setInt32(0, r, true);
    dumpParts.push(le);
    if (r > 0) {
      const delta = deltaArena.subarray(at, at + r);
      dumpParts.push(delta);
      deltaViews.push(delta);
      deltaPages.push(i);
      encodedBytes += r;
    } else if (r === 0) unchanged++;
    else overflow++;
  }
  const hash = fnv1a64(dumpParts);

  // Round trip: each delta applied to a copy of the old page gives the new page.
  const work = new Uint8Array(oldBuf);
  const workViews = deltaPages.map((i) => work.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  let roundTripErrors = 0;
  for (let k = 0; k < deltaViews.length; k++) {
    const i = deltaPages[k];
    decodeXbzrle(deltaViews[k], workViews[k]);
    if (Buffer.compare(workViews[k], newViews[i]) !== 0) roundTripErrors++;
  }
  for (let i = 0; i < pages; i++) {
    if (results[i] === 0 && Buffer.compare(oldB[i], newB[i]) !== 0) roundTripErrors++;
  }
  if (roundTripErrors > 0) {
    failed = true;
    log(`ROUNDTRIP FAILURE ${scenario.name}: ${roundTripErrors} page(s) differ after decodeXbzrle(encodeXbzrle(old, new), old)`);
  }

  // TS vs C: same hash, sizes and page counts.
  let match = 'no C';
  if (baseline) {
    const same =
      baseline.hash === hash &&
      baseline.encodedBytes === encodedBytes &&
      baseline.unchangedPages === unchanged &&
      baseline.overflowPages === overflow &&
      baseline.deltaPages === deltaViews.length;
    if (baseline.roundtripErrors > 0) {
      failed = true;
      log(`C ROUNDTRIP FAILURE ${scenario.name}: ${baseline.roundtripErrors} page(s) (bug in bench/baseline.c)`);
    }
    if (same) match = 'identical';
    else {
      failed = true;
      match = 'MISMATCH';
      reportMismatch(scenario, oldBuf, newBuf, dumpParts, baseline, { hash, encodedBytes, unchanged, overflow });
    }
  }

  // Timed: encode every page.
  let sink = 0;
  const encodeAll = () => {
    let acc = 0;
    for (let i = 0; i < pages; i++) acc += encodeXbzrle(oldViews[i], newViews[i], out);
    sink ^= acc;
  };
  // Timed: apply every delta to its page of the work copy. Applying a delta
  // again to a page that already holds the new bytes rewrites the same bytes
  // with the same work, so one copy serves every iteration and no copy is timed.
  const nDeltas = deltaViews.length;
  const decodeAll = () => {
    let acc = 0;
    for (let k = 0; k < nDeltas; k++) acc += decodeXbzrle(deltaViews[k], workViews[k]);
    sink ^= acc;
  };
  // Timed: memcmp of the two buffers page by page (Buffer.compare).
  const compareAll = () => {
    let acc = 0;
    for (let i = 0; i < pages; i++) acc += Buffer.compare(oldB[i], newB[i]);
    sink ^= acc;
  };

  const enc = measure(`encode ${scenario.name}`, encodeAll, size);
  const dec = nDeltas > 0 ? measure(`decode ${scenario.name}`, decodeAll, nDeltas * PAGE_SIZE) : null;
  const cmp = measure(`compare ${scenario.name}`, compareAll, size);
  if (sink === 0.5) log(''); // keep `sink` observable

  // The decode loop must have left the work copy equal to the new pages.
  for (let k = 0; k < nDeltas; k++) {
    if (Buffer.compare(workViews[k], newViews[deltaPages[k]]) !== 0) {
      failed = true;
      log(`DECODE LOOP FAILURE ${scenario.name}: page ${deltaPages[k]} differs after the timed decode loop`);
      break;
    }
  }

  return {
    scenario: scenario.name,
    description: scenario.description,
    pages,
    encodedBytes,
    encodedPct: (100 * encodedBytes) / size,
    deltaPages: nDeltas,
    unchangedPages: unchanged,
    overflowPages: overflow,
    hash,
    tsEncodeMBps: enc.mbps,
    tsEncodeRme: enc.rme,
    tsDecodeMBps: dec ? dec.mbps : null,
    tsDecodeRme: dec ? dec.rme : null,
    compareMBps: cmp.mbps,
    cEncodeMBps: baseline ? baseline.encodeMBps : null,
    cDecodeMBps: baseline && baseline.deltaPages > 0 ? baseline.decodeMBps : null,
    cHash: baseline ? baseline.hash : null,
    match,
  };
}

/** Locates the first page where TS and C differ and saves a reproducer. */
function reportMismatch(scenario, oldBuf, newBuf, dumpParts, baseline, ts) {
  log(
    `MISMATCH ${scenario.name}: TS hash ${ts.hash} size ${ts.encodedBytes} unchanged ${ts.unchanged} overflow ${ts.overflow}` +
      ` | C hash ${baseline.hash} size ${baseline.encodedBytes} unchanged ${baseline.unchangedPages} overflow ${baseline.overflowPages}`,
  );
  try {
    const cDump = readFileSync(baseline.dumpPath);
    let pos = 0;
    let part = 0;
    for (let page = 0; part < dumpParts.length; page++) {
      const tsR = new DataView(dumpParts[part].buffer).getInt32(0, true);
      const tsDelta = tsR > 0 ? dumpParts[part + 1] : new Uint8Array(0);
      part += tsR > 0 ? 2 : 1;
      const cR = cDump.readInt32LE(pos);
      const cDelta = cR > 0 ? cDump.subarray(pos + 4, pos + 4 + cR) : Buffer.alloc(0);
      pos += 4 + Math.max(cR, 0);
      if (tsR !== cR || Buffer.compare(Buffer.from(tsDelta), cDelta) !== 0) {
        const at = page * PAGE_SIZE;
        const base = join(BUILD, `mismatch-${scenario.name}-page${page}`);
        writeFileSync(`${base}.old.bin`, oldBuf.subarray(at, at + PAGE_SIZE));
        writeFileSync(`${base}.new.bin`, newBuf.subarray(at, at + PAGE_SIZE));
        writeFileSync(`${base}.ts.bin`, tsDelta);
        writeFileSync(`${base}.c.bin`, cDelta);
        log(`  first difference at page ${page} (buffer offset ${at}): TS returned ${tsR}, C returned ${cR}`);
        log(`  reproducer: ${relative(process.cwd(), base)}.{old,new}.bin (the pages), .ts.bin / .c.bin (the deltas)`);
        const rel = relative(ROOT, base);
        log('  reproduce (from the package root, after npm run build):');
        log(
          `  node --input-type=module -e "import { encodeXbzrle } from './dist/index.js'; import { readFileSync as r } from 'node:fs';` +
            ` const out = new Uint8Array(${PAGE_SIZE}); const n = encodeXbzrle(r('${rel}.old.bin'), r('${rel}.new.bin'), out);` +
            ` console.log(n, Buffer.from(out.subarray(0, Math.max(n, 0))).toString('hex'))"`,
        );
        return;
      }
    }
    log('  per-page outputs agree; the difference is in the hash computation');
  } catch (err) {
    log(`  could not locate the differing page: ${err.message}`);
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

async function streamBench(scenario, oldBuf, newBuf) {
  const encTimes = [];
  const decTimes = [];
  let last = null;
  let pageRecords = 0;
  // Run 0 is an untimed warm-up, so the first scenario is not measured on cold (unoptimised) stream code.
  for (let run = 0; run <= streamRuns; run++) {
    const e = await encodeStreamOnce(oldBuf, newBuf);
    const d = await decodeStreamOnce(e.round1, e.round2);
    if (run === 0) continue;
    encTimes.push(e.seconds);
    decTimes.push(d.seconds);
    pageRecords = d.pageRecords;
    if (run === streamRuns) last = { e, d };
  }
  // The receiver's image must equal the new buffer.
  const image = last.d.store.read(BLOCK);
  let ok = image.length === newBuf.length && Buffer.compare(image, newBuf) === 0;
  if (!ok) {
    failed = true;
    let at = 0;
    while (at < Math.min(image.length, newBuf.length) && image[at] === newBuf[at]) at++;
    log(`STREAM FAILURE ${scenario.name}: decoded image differs from the new buffer (first at byte ${at}, page ${Math.floor(at / PAGE_SIZE)})`);
  }
  const s = last.e.stats;
  const rec = s.records;
  const encSec = median(encTimes);
  const decSec = median(decTimes);
  return {
    scenario: scenario.name,
    encodeMBps: size / encSec / MB,
    round2StreamBytes: last.e.round2Bytes,
    round2StreamPct: (100 * last.e.round2Bytes) / size,
    round2PageRecords: pageRecords,
    decodeMBps: pageRecords > 0 ? (pageRecords * PAGE_SIZE) / decSec / MB : null,
    records: { PAGE: rec.PAGE, ZERO: rec.ZERO, XBZRLE: rec.XBZRLE, EOS: rec.EOS },
    overflow: s.overflow,
    ok,
  };
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

async function main() {
  const m = machine();
  log(`xbzrle bench: ${quick ? 'quick, ' : ''}${size / MiB} MiB per scenario, ${PAGE_SIZE}-byte pages, dlen ${PAGE_SIZE}`);
  log(`machine: ${m.cpu} x${m.cpus}, node ${m.node} (V8 ${m.v8}), ${m.platform}`);
  log(`timing: Benchmark.js maxTime ${jsMaxTime}s per JS row, C ${cSeconds}s per loop, streams median of ${streamRuns}`);
  const bin = buildBaseline();
  const codecRows = [];
  const streamRows = [];
  for (const scenario of scenarios) {
    const t = performance.now();
    const { old: oldBuf, new: newBuf } = generate(scenario, size);
    const baseline = bin ? runBaseline(bin, oldBuf, newBuf) : null;
    const row = codecBench(scenario, oldBuf, newBuf, baseline);
    // The buffers and dump handed to the C program are up to 3 x 64 MiB; mismatch reproducers are kept.
    for (const f of ['old.bin', 'new.bin', 'c-out.bin']) rmSync(join(BUILD, f), { force: true });
    codecRows.push(row);
    log(
      `${scenario.name.padEnd(10)} encode ${fmt(row.tsEncodeMBps)} MB/s (±${fmt(row.tsEncodeRme, 1)}%)` +
        ` | decode ${fmt(row.tsDecodeMBps)} MB/s | size ${fmt(row.encodedPct, 2)}% | C ${fmt(row.cEncodeMBps)} MB/s` +
        ` | cmp ${fmt(row.compareMBps)} MB/s | ${row.match}`,
    );
    if (!args['no-stream']) {
      const srow = await streamBench(scenario, oldBuf, newBuf);
      streamRows.push(srow);
      log(
        `${''.padEnd(10)} stream encode ${fmt(srow.encodeMBps)} MB/s | stream decode ${fmt(srow.decodeMBps)} MB/s` +
          ` | round-2 stream ${fmt(srow.round2StreamPct, 2)}% | ${srow.ok ? 'ok' : 'FAILED'}`,
      );
    }
    log(`${''.padEnd(10)} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  }

  // Markdown tables.
  const unchangedCmp = codecRows.find((r) => r.scenario === 'UNCHANGED')?.compareMBps ?? null;
  log('');
  log(`### Codec, ${size / MiB} MiB of ${PAGE_SIZE}-byte pages per scenario (MB/s = 10^6 bytes/s)`);
  log('');
  log('| scenario | changes | encoded % | overflow pages | TS encode MB/s | C encode MB/s | TS/C | Buffer.compare MB/s | TS/compare | TS/full memcmp | TS decode MB/s | C decode MB/s | TS vs C |');
  log('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|');
  for (const r of codecRows) {
    log(
      `| ${r.scenario} | ${r.description} | ${fmt(r.encodedPct, 2)} | ${r.overflowPages} | ${fmt(r.tsEncodeMBps)} | ${fmt(r.cEncodeMBps)}` +
        ` | ${fmtRatio(r.tsEncodeMBps, r.cEncodeMBps)} | ${fmt(r.compareMBps)} | ${fmtRatio(r.tsEncodeMBps, r.compareMBps)}` +
        ` | ${fmtRatio(r.tsEncodeMBps, unchangedCmp)} | ${fmt(r.tsDecodeMBps)} | ${fmt(r.cDecodeMBps)} | ${r.match} |`,
    );
  }
  if (streamRows.length > 0) {
    log('');
    log(`### Streams, round 2 of ${size / MiB} MiB (${STREAM_RUN / MiB} MiB PageRecords, ${STREAM_CACHE / MiB} MiB cache)`);
    log('');
    log('| scenario | XbzrleEncodeStream MB/s | round-2 stream bytes | stream % | page records | XbzrleDecodeStream MB/s | image check |');
    log('|---|--:|--:|--:|--:|--:|---|');
    for (const r of streamRows) {
      log(
        `| ${r.scenario} | ${fmt(r.encodeMBps)} | ${r.round2StreamBytes} | ${fmt(r.round2StreamPct, 2)} | ${r.round2PageRecords}` +
          ` | ${fmt(r.decodeMBps)} | ${r.ok ? 'ok' : 'FAILED'} |`,
      );
    }
  }
  log('');

  if (args.json) {
    writeFileSync(args.json, `${JSON.stringify({ machine: m, size, quick, codec: codecRows, streams: streamRows }, null, 2)}\n`);
  }
  if (failed) {
    log('bench: FAILED (see MISMATCH / FAILURE lines above)');
    process.exitCode = 1;
  } else {
    log('bench: all outputs verified');
  }
}

main().catch((err) => {
  process.stderr.write(`bench: crashed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
