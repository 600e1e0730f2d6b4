#!/usr/bin/env node
// XBZRLE benchmark harness.
//
//   npm run build && node bench/run.mjs [--quick] [options]
//
// Plain ESM JavaScript (type-checked from its JSDoc: tsconfig.scripts.json)
// importing the built package (../dist/index.js), so it runs under plain
// `node` with no TypeScript step. See bench/README.md.
//
// This file parses the options and runs the scenarios; the pieces live in
// bench/lib/: options.mjs (flags), package.mjs (loading dist/), c-baseline.mjs
// (compiling and running baseline.c), ts-worker.mjs (the TypeScript path in
// a child process with XBZRLE_WASM=0, driven over IPC), outputs.mjs (the
// encoder's output in baseline.c's dump format, and where two differ),
// timing.mjs (Benchmark.js, best-of, paired samples), codec-bench.mjs,
// stream-bench.mjs, memory-child.mjs, machine.mjs and report.mjs (what is
// printed). The peers are bench/peers.mjs, the scenarios bench/scenarios.mjs.
//
// Each scenario runs REPS rounds of [C, TS, SIMD on ordinary buffers, SIMD
// on allocPages memory, memcmp, decode on ordinary buffers, decode on
// allocPages memory] and the best (max MB/s) of each is kept; the ratios are
// computed from those bests. Then a paired phase: the C baseline as a server
// (baseline --serve) and the two SIMD paths take turns, one short sample
// each, and the median of the per-pair ratios is printed next to the ratio of
// bests. See bench/README.md, "How the paths are measured".
//
// Correctness is test/bench-equivalence.test.ts (every path byte for byte
// against the C baseline, round trips, streams). The bench keeps a cheap
// sanity check of the outputs it measures: exit status 1 on a MISMATCH (any
// encoder path against C or against each other), a failed round trip or a
// crash; 2 on bad options or a missing dist/. Speed never affects the exit
// status.

import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { loadPeers, peerBench, PEER_NAMES } from './peers.mjs';
import { PAGE_SIZE, generate } from './scenarios.mjs';
import { BUILD_DIR, baselineFiles, buildBaseline } from './lib/c-baseline.mjs';
import { codecBench } from './lib/codec-bench.mjs';
import { machine, pinToCpu } from './lib/machine.mjs';
import { runMemoryBench } from './lib/memory-child.mjs';
import { HELP, OptionError, parseOptions } from './lib/options.mjs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kernelActive, loadPackage } from './lib/package.mjs';
import { codecLines, elapsedLine, headerLines, log, peersLine, streamLine, tables } from './lib/report.mjs';
import { streamBench } from './lib/stream-bench.mjs';
import { TsChild, serveTsWorker } from './lib/ts-worker.mjs';

/** @typedef {import('./lib/codec-bench.mjs').BenchContext} BenchContext */
/** @typedef {Awaited<ReturnType<typeof loadPeers>>} Peers */

/**
 * Prints `bench: message` and exits with status 2 (bad options, no dist/, --cpu failing).
 * @param {string} message
 * @returns {never}
 */
function die(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

/**
 * The options, or exit: usage on -h/--help (status 0), a message on a bad option (status 2).
 * @param {string[]} argv
 */
function options(argv) {
  try {
    const o = parseOptions(argv, os.cpus().length);
    if (o !== 'help') return o;
    process.stdout.write(HELP);
    process.exit(0);
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    if (!err.withHelp) die(err.message);
    process.stderr.write(`${err.message}\n\n${HELP}`);
    process.exit(2);
  }
}

/**
 * Compiles the C baseline (unless --no-c); null with a notice when there is none.
 * @param {import('./lib/options.mjs').Options} o
 * @returns {BenchContext['c']}
 */
function cBaseline(o) {
  if (!o.c) {
    log('C baseline: skipped (--no-c)');
    return null;
  }
  const built = buildBaseline({ dir: BUILD_DIR });
  if (built.bin === null) {
    log(`C baseline: skipped (${built.reason})${built.detail ? `:\n${built.detail}` : ''}`);
    return null;
  }
  if (built.warnings) log(built.warnings);
  return { bin: built.bin, files: baselineFiles(BUILD_DIR), dir: BUILD_DIR };
}

/**
 * The TS-path child (unless --no-ts), checked to run with the kernel off.
 * @param {import('./lib/options.mjs').Options} o
 */
async function tsChild(o) {
  if (!o.ts) return null;
  const ts = new TsChild();
  const hello = await ts.hello();
  log(`TS path: child process with XBZRLE_WASM=0 (kernel ${hello.kernel ? 'STILL ACTIVE: the TS column is not the TS path' : 'off, verified'})`);
  return ts;
}

/**
 * @typedef {object} Results
 * @property {import('./lib/codec-bench.mjs').CodecRow[]} codecRows
 * @property {import('./lib/stream-bench.mjs').StreamRow[]} streamRows
 * @property {import('./lib/report.mjs').PeerRow[]} peerRows
 */

/**
 * Codec, streams and peers of one scenario; rows appended to `results`.
 * @param {BenchContext} ctx
 * @param {import('./scenarios.mjs').Scenario} scenario
 * @param {Peers | null} peers
 * @param {Results} results
 */
async function runScenario(ctx, scenario, peers, results) {
  const { lib, options: o } = ctx;
  const t = performance.now();
  const { old: oldBuf, new: newBuf } = generate(scenario, o.size);
  const { row, oldA, newA } = await codecBench(ctx, scenario, oldBuf, newBuf);
  results.codecRows.push(row);
  for (const line of codecLines(row)) log(line);
  try {
    if (o.stream) {
      const srow = await streamBench(ctx, scenario, oldBuf, newBuf, oldA, newA);
      srow.codecMBps = row.simdEncodeMBps;
      srow.allocCodecMBps = row.allocEncodeMBps;
      results.streamRows.push(srow);
      log(streamLine(srow));
    }
  } finally {
    lib.freePages(oldA);
    lib.freePages(newA);
  }
  if (peers) {
    const prow = peerBench(peers, oldBuf.subarray(0, o.peerSize), newBuf.subarray(0, o.peerSize), { quick: o.quick, maxTime: o.jsMaxTime });
    for (const f of prow.failures) ctx.fail(`PEER ROUNDTRIP FAILURE ${scenario.name}: ${f}`);
    // What XBZRLE puts on the wire for these pages: the deltas, plus whole pages where the delta overflowed.
    const wirePct = (100 * (row.encodedBytes + row.overflowPages * PAGE_SIZE)) / o.size;
    results.peerRows.push({ scenario: scenario.name, xbzrleWirePct: wirePct, simdEncodeMBps: row.simdEncodeMBps, results: prow.results });
    log(peersLine(prow.results));
  }
  log(elapsedLine(performance.now() - t));
}

/**
 * Runs other bench scripts in turn (inherited output); exits with the first failure.
 * @param {[string, string[]][]} scripts
 */
function runScripts(scripts) {
  for (const [script, args] of scripts) {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}

/** @param {string[]} argv */
async function main(argv) {
  const at = argv.indexOf('--threads');
  if (at >= 0) {
    const list = argv[at + 1] !== undefined && /^[\d,]+$/.test(argv[at + 1] ?? '') ? argv[at + 1] ?? '1,2,4,8' : '1,2,4,8';
    runScripts([
      ['./threads.mjs', ['--threads', list]],
      ['./rounds.mjs', ['--threads', list]],
      ['./jobs.mjs', ['--threads', list]],
    ]);
    return;
  }
  if (argv.includes('--jobs')) {
    runScripts([
      ['./jobs.mjs', []],
      ['./pipeline.mjs', []],
    ]);
    return;
  }
  const o = options(argv);
  let lib;
  try {
    lib = await loadPackage();
  } catch (err) {
    die(err instanceof Error ? err.message : String(err));
  }
  if (o.tsWorker) {
    // Compatibility: the TS-path child used to be this file with --ts-worker.
    serveTsWorker(lib);
    return;
  }
  if (o.cpu !== null) {
    try {
      pinToCpu(o.cpu);
    } catch (err) {
      die(err instanceof Error ? err.message : String(err));
    }
  }
  const m = machine();
  const simdOn = kernelActive(lib);
  for (const line of headerLines(o, m, simdOn)) log(line);
  const verdict = { failed: false };
  /** @type {BenchContext} */
  const ctx = {
    lib,
    options: o,
    log,
    fail: (line) => {
      verdict.failed = true;
      log(line);
    },
    c: cBaseline(o),
    ts: null,
  };
  ctx.ts = await tsChild(o);
  const peers = o.peers ? await loadPeers() : null;
  const missingPeers = peers ? PEER_NAMES.filter((n) => !peers[n]) : [];
  for (const name of missingPeers) log(`peer ${name}: skipped (run npm run bench:peers)`);

  /** @type {Results} */
  const results = { codecRows: [], streamRows: [], peerRows: [] };
  try {
    for (const scenario of o.scenarios) await runScenario(ctx, scenario, peers, results);
  } finally {
    ctx.ts?.close();
  }

  let memory = null;
  if (o.memory) {
    log('');
    log('memory: node --expose-gc bench/memory.mjs');
    const run = runMemoryBench(log);
    if (run.failure) ctx.fail(run.failure);
    memory = run.result;
  }

  for (const line of tables(o, { ...results, missingPeers, memory })) log(line);

  if (o.json) {
    const peerRows = results.peerRows.map(({ results: byPeer, ...r }) => ({ ...r, ...byPeer }));
    const json = { machine: m, size: o.size, quick: o.quick, reps: o.reps, simd: simdOn, codec: results.codecRows, streams: results.streamRows, peers: peerRows, memory };
    writeFileSync(o.json, `${JSON.stringify(json, null, 2)}\n`);
  }
  if (verdict.failed) {
    log('bench: FAILED (see MISMATCH / FAILURE lines above)');
    process.exitCode = 1;
  } else {
    log('bench: all outputs verified');
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`bench: crashed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
