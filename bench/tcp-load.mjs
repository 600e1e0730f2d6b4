#!/usr/bin/env node
// Backpressure under load (issue 3): a producer writes N GiB of page records
// into an XbzrleEncodeStream piped over a real TCP socket on 127.0.0.1 to an
// XbzrleDecodeStream in a SEPARATE PROCESS whose consumer is deliberately
// slow. The receiver is the bottleneck, so backpressure has to travel
// consumer -> decoder -> socket -> TCP -> encoder -> producer; if it did not,
// one of the two processes would buffer the difference and its RSS would grow
// with the data. Both processes measure their own memory.
//
//   npm run build && node bench/tcp-load.mjs [--gib 4] [--cache 64] [--block 256]
//        [--slow-every 64] [--slow-ms 1] [--hwm 16] [--sample-ms 5] [--json] [--quiet]
//        [--corrupt]   (self-test: the receiver flips one byte before hashing; the run must fail)
//
// Producer (this process): a guest of one RAM block (--block MiB, default 256)
// sent round after round until --gib GiB of page records were written (whole
// rounds: the total is rounded up to a multiple of the block), as 2 MiB
// records, each a freshly allocated Buffer (as a producer reading guest memory
// into new buffers would), with the encoder's backpressure honoured (write()
// false -> wait for 'drain'; the encoder queues at most --hwm records, its
// writableHighWaterMark, default 16), and sync() after every round but the
// last, end() after the last. Record contents,
// deterministic: 8 seeded random 2 MiB templates (mulberry32) made before the
// baseline; the record at offset o copies template (o / 2 MiB) % 8; every 8th
// page is all zero (ZERO records); the other pages fall in four classes by a
// hash of their index: static (never changes), and changing every round,
// every 2nd round, every 4th round, with SPARSE changes (3 runs of 4..19
// XORed bytes at seeded positions) seeded by (page, version). So rounds after
// the first carry unchanged hits, XBZRLE deltas and, as 256 MiB of guest does
// not fit a 64 MiB cache, many misses (PAGE records).
//
// Receiver (a child process, fork() of this script with --role receiver):
// listens on 127.0.0.1:0, pipes the connection into an XbzrleDecodeStream
// (default MemoryPageStore, emitPages: true) and the decoded pages into an
// object-mode Writable that waits --slow-ms ms every --slow-every pages. At
// the end it hashes its final block (SHA-256, read from the store 2 MiB at a
// time) and sends the hash over IPC; the producer hashed its last round as it
// generated it. Exit status 1 on a hash mismatch, a wrong page count, or any
// error in either process (a receiver killed half-way fails the producer with
// ECONNRESET; a producer killed half-way makes the receiver exit).
//
// Memory, each process: process.memoryUsage.rss() sampled every 5 ms
// (--sample-ms) from the baseline (library loaded, SIMD kernel started, inputs
// made, GC) to the end of the transfer, and on Linux the kernel's high-water
// mark (VmHWM in /proc/self/status, reset through /proc/self/clear_refs at the
// baseline), which also catches peaks between samples. Reported: peak RSS and
// peak minus baseline. For the receiver the decoded guest image itself (the
// MemoryPageStore, up to the block size) is part of its RSS; its "overhead" is
// peak - baseline - store bytes. Issue target: both processes bounded by the
// cache size + a small constant (receiver: + its store).

import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { scriptArgs } from './args.mjs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { mulberry32 } from './scenarios.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const PAGE = 4096;
const RECORD = 2 * MiB;
const TEMPLATES = 8;
const BLOCK_ID = 'pc.ram';

const { values: args } = scriptArgs(
  'tcp-load',
  `usage: node bench/tcp-load.mjs [--gib 4] [--cache 64] [--block 256] [--slow-every 64] [--slow-ms 1]
       [--hwm 16] [--sample-ms 5] [--json] [--quiet] [--corrupt]
`,
  {
    role: { type: 'string', default: 'producer' },
    gib: { type: 'string', default: '4' },
    cache: { type: 'string', default: '64' },
    block: { type: 'string', default: '256' },
    'slow-every': { type: 'string', default: '64' },
    'slow-ms': { type: 'string', default: '1' },
    'sample-ms': { type: 'string', default: '5' },
    hwm: { type: 'string', default: '16' },
    json: { type: 'boolean', default: false },
    corrupt: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
);

/**
 * @param {'gib' | 'cache' | 'block' | 'slow-every' | 'slow-ms' | 'sample-ms' | 'hwm'} name
 * @param {number} [min]
 */
const num = (name, min = 0) => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < min) {
    process.stderr.write(`tcp-load: --${name} must be a number >= ${min}, got ${args[name]}\n`);
    process.exit(2);
  }
  return v;
};
const gib = num('gib', 0);
const cacheBytes = Math.round(num('cache', 0) * MiB);
const blockSize = Math.round(num('block', 2) * MiB);
const slowEvery = Math.max(1, Math.floor(num('slow-every', 1)));
const slowMs = num('slow-ms', 0);
const sampleMs = Math.max(1, num('sample-ms', 1));
const hwm = Math.max(1, Math.floor(num('hwm', 1)));
if (blockSize % RECORD !== 0) {
  process.stderr.write('tcp-load: --block must be a multiple of 2 (MiB)\n');
  process.exit(2);
}
if (cacheBytes < PAGE) {
  process.stderr.write('tcp-load: --cache must be at least one page\n');
  process.exit(2);
}

const distEntry = join(HERE, '..', 'dist', 'index.js');
if (!existsSync(distEntry)) {
  process.stderr.write('tcp-load: dist/index.js not found: run `npm run build` first\n');
  process.exit(2);
}
const lib = /** @type {import('./lib/package.mjs').Lib} */ (await import(pathToFileURL(distEntry).href));

// A gc() without --expose-gc on the command line.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- memory measurement (both roles) ---------------------------------------

function readHwm() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Baseline after a GC; then samples RSS every `sampleMs` and resets VmHWM. */
async function startMemory(phase = () => 0) {
  // Start the SIMD kernel (if any) before the baseline: its module and first memory are not the load.
  lib.freePages(lib.allocPages(1));
  gc();
  await sleep(30);
  gc();
  const baseline = process.memoryUsage.rss();
  let hwmReset = false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    hwmReset = true;
  } catch {
    // not Linux, or not allowed: sampled figures only
  }
  let peak = baseline;
  let atPeak = process.memoryUsage();
  /** @type {number[]} */
  const phases = []; // peak RSS per phase (round)
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    const p = phase();
    if (!(rss <= phases[p])) phases[p] = rss;
    if (rss > peak) {
      peak = rss;
      atPeak = process.memoryUsage(); // what the peak is made of (V8 heap, ArrayBuffers)
    }
  }, sampleMs);
  return {
    baseline,
    /** Stops sampling; returns the figures in bytes. */
    stop() {
      clearInterval(timer);
      const rss = process.memoryUsage.rss();
      if (rss > peak) peak = rss;
      const hwm = hwmReset ? readHwm() : null;
      const worst = Math.max(peak, hwm ?? 0);
      const breakdown = { heapUsed: atPeak.heapUsed, heapTotal: atPeak.heapTotal, external: atPeak.external, arrayBuffers: atPeak.arrayBuffers };
      return { baseline, peakSampled: peak, hwm, peak: worst, peakDelta: worst - baseline, breakdown, phases: Array.from(phases, (x) => x ?? 0) };
    },
  };
}

// ---- deterministic guest memory ----------------------------------------------

/**
 * A 32-bit hash of a page index (the page's change class).
 * @param {number} x
 */
function hash32(x) {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function makeTemplates() {
  const templates = [];
  for (let t = 0; t < TEMPLATES; t++) {
    const b = Buffer.alloc(RECORD);
    const rand = mulberry32(0x5eed0000 + t);
    for (let i = 0; i < RECORD; i += 4) b.writeUInt32LE(rand(), i);
    for (let p = 7; p < RECORD / PAGE; p += 8) b.fill(0, p * PAGE, (p + 1) * PAGE);
    templates.push(b);
  }
  return templates;
}

/** Period (in rounds) of the changes of page `page`; 0: never changes. */
const PERIODS = [0, 1, 2, 4];

/**
 * The record at `offset` in round `round`: a fresh Buffer.
 * @param {Buffer[]} templates
 * @param {number} round
 * @param {number} offset
 */
function makeRecord(templates, round, offset) {
  const data = Buffer.allocUnsafe(RECORD);
  templates[(offset / RECORD) % TEMPLATES].copy(data);
  const first = offset / PAGE;
  for (let i = 0; i < RECORD / PAGE; i++) {
    const page = first + i;
    if (page % 8 === 7) continue; // zero pages stay zero
    const period = PERIODS[hash32(page) & 3];
    if (period === 0) continue;
    const version = Math.floor(round / period);
    if (version === 0) continue;
    const rand = mulberry32(hash32(page) ^ Math.imul(version, 0x9e3779b1));
    const base = i * PAGE;
    for (let k = 0; k < 3; k++) {
      const at = rand() % (PAGE - 20);
      const len = 4 + (rand() & 15);
      for (let j = at; j < at + len; j++) data[base + j] ^= (rand() % 255) + 1;
    }
  }
  return data;
}

// ---- receiver -----------------------------------------------------------------

/**
 * What the receiver sends the producer over IPC.
 * @typedef {{ type: 'listening', port: number, baseline: number } | { type: 'result', result: Awaited<ReturnType<typeof receiver>> } | { type: 'error', message: string }} ReceiverMessage
 */

async function receiver() {
  /** @type {InstanceType<typeof lib.XbzrleDecodeStream> | null} */
  let dec = null;
  const mem = await startMemory(() => (dec === null ? 0 : dec.stats.records.EOS));
  /** @type {InstanceType<typeof lib.XbzrleDecodeStream>} */
  let decoder;
  const store = new lib.MemoryPageStore();
  dec = decoder = new lib.XbzrleDecodeStream({ store, emitPages: true });
  /** @type {Record<import('xbzrle').DecodedPage['kind'], number>} */
  const kinds = { page: 0, zero: 0, xbzrle: 0 };
  let pages = 0;
  let slowWaits = 0;
  let slowTime = 0;
  const consumer = new Writable({
    objectMode: true,
    write(/** @type {import('xbzrle').DecodedPage} */ page, _encoding, callback) {
      kinds[page.kind]++;
      if (++pages % slowEvery === 0 && slowMs > 0) {
        slowWaits++;
        const t = performance.now();
        setTimeout(() => {
          slowTime += performance.now() - t;
          callback();
        }, slowMs);
      } else callback();
    },
  });
  const server = createServer();
  /** @type {Promise<import('node:net').Socket>} */
  const connection = new Promise((resolve) => server.once('connection', resolve));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  /** @type {NonNullable<typeof process.send>} */ (process.send)({ type: 'listening', port, baseline: mem.baseline });
  const socket = await connection;
  server.close();
  const t0 = performance.now();
  await pipeline(socket, decoder, consumer);
  const seconds = (performance.now() - t0) / 1000;
  const memory = mem.stop();
  const storeBytes = store.memoryUsage;

  const blocks = decoder.blocks ?? [];
  const length = blocks.find((b) => b.id === BLOCK_ID)?.length ?? 0;
  if (args.corrupt && length > 0) {
    // Self-test of the verification (--corrupt): one changed byte must fail the run.
    const page = new Uint8Array(PAGE);
    const at = Math.floor(length / PAGE / 3) * PAGE;
    store.get(BLOCK_ID, at, page);
    page[100] ^= 1;
    store.put(BLOCK_ID, at, page);
  }
  // Hash the final image 2 MiB at a time (no copy of the whole block).
  const h = createHash('sha256');
  const buf = new Uint8Array(RECORD);
  for (let off = 0; off < length; off += RECORD) {
    const n = Math.min(RECORD, length - off);
    store.get(BLOCK_ID, off, buf.subarray(0, n));
    h.update(buf.subarray(0, n));
  }
  const s = decoder.stats.toJSON();
  return {
    sha256: h.digest('hex'),
    blockLength: length,
    blocks: blocks.length,
    pages,
    kinds,
    records: s.records,
    bytesIn: s.ram.transferred,
    seconds,
    slowWaits,
    slowSeconds: slowTime / 1000,
    storeBytes,
    memory: { ...memory, overhead: memory.peakDelta - storeBytes },
  };
}

// ---- producer -------------------------------------------------------------------

async function producer() {
  const rounds = Math.max(1, Math.ceil((gib * GiB) / blockSize));
  const templates = makeTemplates();
  const child = fork(SELF, [
    '--role', 'receiver',
    '--block', String(blockSize / MiB),
    '--slow-every', String(slowEvery),
    '--slow-ms', String(slowMs),
    '--sample-ms', String(sampleMs),
    ...(args.corrupt ? ['--corrupt'] : []),
  ], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

  let childExit = /** @type {{ code: number | null, signal: NodeJS.Signals | null } | undefined} */ (undefined);
  /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} */
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve((childExit = { code, signal }))));
  /** @type {ReceiverMessage[]} */
  const messages = [];
  /** @type {{ resolve: (m: ReceiverMessage) => void }[]} */
  const waiters = [];
  child.on('message', (/** @type {ReceiverMessage} */ m) => {
    const w = waiters.shift();
    if (w) w.resolve(m);
    else messages.push(m);
  });
  /** @returns {Promise<ReceiverMessage>} */
  const nextMessage = () =>
    messages.length > 0
      ? Promise.resolve(/** @type {ReceiverMessage} */ (messages.shift()))
      : new Promise((resolve, reject) => {
          waiters.push({ resolve });
          exited.then(({ code, signal }) => reject(new Error(`receiver exited (code ${code}, signal ${signal}) before reporting`)));
        });

  const ready = await nextMessage();
  if (ready.type !== 'listening') throw new Error(`unexpected message from the receiver: ${JSON.stringify(ready)}`);

  let round = 0;
  const mem = await startMemory(() => round);
  const t0 = performance.now();
  const socket = connect(ready.port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const enc = new lib.XbzrleEncodeStream({ cacheSize: cacheBytes, blocks: [{ id: BLOCK_ID, length: blockSize }], writableHighWaterMark: hwm });
  const sent = pipeline(enc, socket);
  let failed = /** @type {Error | null} */ (null);
  sent.catch((err) => (failed ??= err));
  // Waits for `promise` or the encoder's end, whichever comes first: a destroyed
  // encoder (the connection failed) may never call back a pending write or sync.
  const closed = new Promise((resolve) => enc.once('close', resolve));
  /** @param {Promise<unknown>} promise */
  const orClosed = (promise) => Promise.race([promise, closed]);
  const finalHash = createHash('sha256');
  let bytesIn = 0;
  let drainWaits = 0;
  let drainTime = 0;
  const progressEvery = Math.max(1, Math.floor(rounds / 8));
  for (; round < rounds && failed === null; round++) {
    const last = round === rounds - 1;
    for (let offset = 0; offset < blockSize && failed === null; offset += RECORD) {
      const data = makeRecord(templates, round, offset);
      if (last) finalHash.update(data);
      bytesIn += data.length;
      if (!enc.write({ block: BLOCK_ID, offset, data })) {
        drainWaits++;
        const t = performance.now();
        await orClosed(new Promise((resolve) => enc.once('drain', resolve)));
        drainTime += performance.now() - t;
      }
    }
    if (!last && failed === null) await orClosed(new Promise((resolve) => enc.sync((err) => (err ? ((failed ??= err), resolve(undefined)) : resolve(undefined)))));
    // Let timers run (the RSS sampler) even when no write had to wait for 'drain' this round.
    await new Promise((resolve) => setImmediate(resolve));
    if (!args.quiet && !args.json && (round + 1) % progressEvery === 0) {
      const s = (performance.now() - t0) / 1000;
      process.stderr.write(`tcp-load: round ${round + 1}/${rounds}, ${(bytesIn / GiB).toFixed(2)} GiB in ${s.toFixed(1)} s, RSS ${(process.memoryUsage.rss() / MiB).toFixed(0)} MiB\n`);
    }
  }
  enc.end();
  await sent.catch(() => {});
  const producerSeconds = (performance.now() - t0) / 1000;
  const memory = mem.stop();
  const result = await nextMessage().catch((err) => /** @type {ReceiverMessage} */ ({ type: 'error', message: err.message }));
  await exited;
  const seconds = (performance.now() - t0) / 1000;
  const encStats = enc.stats.toJSON();
  const sha256 = finalHash.digest('hex');
  const recv = result.type === 'result' ? result.result : null;
  const pagesIn = bytesIn / PAGE;
  const pagesSent = encStats.records.PAGE + encStats.records.ZERO + encStats.records.XBZRLE;
  const problems = [];
  if (failed !== null) problems.push(`producer: ${failed.message ?? failed}`);
  if (result.type === 'error') problems.push(`receiver: ${result.message}`);
  if (childExit?.code !== 0) problems.push(`receiver exit code ${childExit?.code} signal ${childExit?.signal}`);
  if (pagesSent + encStats.ram.skipped !== pagesIn) problems.push(`encoder: ${pagesSent} records + ${encStats.ram.skipped} skipped for ${pagesIn} pages`);
  if (recv !== null) {
    if (recv.sha256 !== sha256) problems.push(`final image differs: receiver sha256 ${recv.sha256}, producer ${sha256}`);
    if (recv.pages !== pagesSent) problems.push(`receiver consumed ${recv.pages} pages, encoder sent ${pagesSent}`);
    if (recv.bytesIn !== encStats.ram.transferred) problems.push(`receiver decoded ${recv.bytesIn} bytes, encoder sent ${encStats.ram.transferred}`);
  }
  const verified = recv !== null && recv.sha256 === sha256;
  /** @param {Record<string, number>} b */
  const breakdownMiB = (b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, mb(v)]));
  /** @param {number | null | undefined} x */
  const mb = (x) => (x === null || x === undefined ? null : Math.round((x / MiB) * 10) / 10);
  const summary = {
    ok: problems.length === 0,
    verified,
    problems,
    gib: bytesIn / GiB,
    bytesIn,
    bytesOnWire: encStats.ram.transferred,
    rounds,
    blockMiB: blockSize / MiB,
    recordMiB: RECORD / MiB,
    cacheMiB: encStats['xbzrle-cache']['cache-size'] / MiB,
    writableHighWaterMark: hwm,
    slow: { everyPages: slowEvery, ms: slowMs },
    seconds: Math.round(seconds * 100) / 100,
    mbps: Math.round(bytesIn / producerSeconds / 1e6),
    wireMbps: Math.round(encStats.ram.transferred / producerSeconds / 1e6),
    records: encStats.records,
    skipped: encStats.ram.skipped,
    cacheMissRate: Math.round(encStats['xbzrle-cache']['cache-miss-rate'] * 1000) / 1000,
    sha256,
    producer: {
      baselineMiB: mb(memory.baseline),
      peakMiB: mb(memory.peak),
      peakSampledMiB: mb(memory.peakSampled),
      hwmMiB: mb(memory.hwm),
      peakDeltaMiB: mb(memory.peakDelta),
      atPeakMiB: breakdownMiB(memory.breakdown),
      roundPeaksMiB: memory.phases.map(mb),
      drainWaits,
      drainSeconds: Math.round(drainTime / 10) / 100,
    },
    receiver:
      recv === null
        ? null
        : {
            baselineMiB: mb(recv.memory.baseline),
            peakMiB: mb(recv.memory.peak),
            peakSampledMiB: mb(recv.memory.peakSampled),
            hwmMiB: mb(recv.memory.hwm),
            peakDeltaMiB: mb(recv.memory.peakDelta),
            storeMiB: mb(recv.storeBytes),
            overheadMiB: mb(recv.memory.overhead),
            atPeakMiB: breakdownMiB(recv.memory.breakdown),
            roundPeaksMiB: recv.memory.phases.map(mb),
            pages: recv.pages,
            kinds: recv.kinds,
            slowWaits: recv.slowWaits,
            slowSeconds: Math.round(recv.slowSeconds * 100) / 100,
          },
  };
  /** @param {number | null | undefined} x */
  const f = (x) => (x === null || x === undefined ? 'n/a' : x.toFixed(1));
  const r = summary.receiver;
  const lines = [
    `tcp-load: ${summary.gib.toFixed(2)} GiB of page records (${rounds} rounds of a ${blockSize / MiB} MiB block, 2 MiB records) -> ` +
      `XbzrleEncodeStream (${summary.cacheMiB} MiB cache, ${hwm} records queued at most) -> TCP 127.0.0.1 -> XbzrleDecodeStream in a child process -> slow consumer (${slowMs} ms every ${slowEvery} pages)`,
    `  bytes in ${bytesIn} (${f(bytesIn / MiB)} MiB), on the wire ${encStats.ram.transferred} (${f(encStats.ram.transferred / MiB)} MiB); ` +
      `records PAGE ${encStats.records.PAGE}, ZERO ${encStats.records.ZERO}, XBZRLE ${encStats.records.XBZRLE}, unchanged ${encStats.ram.skipped}`,
    `  time ${summary.seconds.toFixed(1)} s, ${summary.mbps} MB/s of pages in, ${summary.wireMbps} MB/s on the wire; ` +
      `producer waited for 'drain' ${drainWaits} times (${summary.producer.drainSeconds} s)` +
      (r ? `, consumer slept ${r.slowWaits} times (${r.slowSeconds} s)` : ''),
    `  producer RSS: baseline ${f(summary.producer.baselineMiB)} MiB, peak ${f(summary.producer.peakMiB)} MiB ` +
      `(sampled ${f(summary.producer.peakSampledMiB)}, VmHWM ${f(summary.producer.hwmMiB)}), peak - baseline ${f(summary.producer.peakDeltaMiB)} MiB` +
      `; at the sampled peak: ArrayBuffers ${f(summary.producer.atPeakMiB.arrayBuffers)} MiB, V8 heap ${f(summary.producer.atPeakMiB.heapUsed)} MiB`,
    r
      ? `  receiver RSS: baseline ${f(r.baselineMiB)} MiB, peak ${f(r.peakMiB)} MiB (sampled ${f(r.peakSampledMiB)}, VmHWM ${f(r.hwmMiB)}), ` +
        `peak - baseline ${f(r.peakDeltaMiB)} MiB = store ${f(r.storeMiB)} MiB + ${f(r.overheadMiB)} MiB` +
        `; at the sampled peak: ArrayBuffers ${f(r.atPeakMiB.arrayBuffers)} MiB, V8 heap ${f(r.atPeakMiB.heapUsed)} MiB`
      : '  receiver: no result',
    `  peak RSS per round (MiB), producer: ${summary.producer.roundPeaksMiB.map((x) => /** @type {number} */ (x).toFixed(0)).join(' ')}`,
    ...(r ? [`  peak RSS per round (MiB), receiver: ${r.roundPeaksMiB.map((/** @type {number | null} */ x) => /** @type {number} */ (x).toFixed(0)).join(' ')}`] : []),
    verified ? `  final image verified: sha256 ${sha256.slice(0, 16)}… on both sides` : '  final image NOT verified',
    ...problems.map((p) => `  FAILURE: ${p}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exitCode = summary.ok ? 0 : 1;
}

if (args.role === 'receiver') {
  if (typeof process.send !== 'function') {
    process.stderr.write('tcp-load: --role receiver needs an IPC channel (it is started by the producer)\n');
    process.exit(2);
  }
  // The producer went away (killed, crashed): do not linger as an orphan.
  let reported = false;
  process.on('disconnect', () => {
    if (!reported) process.exit(1);
  });
  try {
    const result = await receiver();
    reported = true;
    process.send({ type: 'result', result }, () => process.disconnect());
  } catch (err) {
    reported = true;
    /** @type {NonNullable<typeof process.send>} */ (process.send)({ type: 'error', message: String(/** @type {{ stack?: string } | null | undefined} */ (err)?.stack ?? err) }, () => {
      process.disconnect();
      process.exitCode = 1;
    });
  }
} else if (args.role === 'producer') {
  await producer();
} else {
  process.stderr.write(`tcp-load: unknown --role ${args.role}\n`);
  process.exit(2);
}
