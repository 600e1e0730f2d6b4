#!/usr/bin/env node
// Peak memory of a 1 GiB encode with a 64 MiB cache (issue target: peak RSS
// growth < 64 MiB + 48 MiB).
//
//   npm run build && node --expose-gc bench/memory.mjs [--json] [--rounds n] [--block MiB] [--hwm n]
//
// Input: a guest of one 256 MiB RAM block sent 4 times (4 rounds = 1 GiB of
// page records), as 2 MiB PageRecords made on the fly, each a freshly
// allocated Buffer (as a producer reading guest memory into new buffers
// would), written with backpressure honoured (default writableHighWaterMark
// of 16 records), through XbzrleEncodeStream (64 MiB cache) into a sink that
// drops the bytes. Record contents, deterministic: 8 seeded random 2 MiB
// templates (mulberry32) made before the baseline is taken; the record at
// offset o copies template (o / 2 MiB) % 8; every 8th page is all zero; in
// rounds 2..4 the record then gets SPARSE changes (12 changed bytes every
// 1111, from a PRNG seeded by round and offset). With 256 MiB of guest and
// 64 MiB of cache most pages miss the cache (PAGE records); the rest are
// XBZRLE deltas or ZERO records.
//
// Measured: process.memoryUsage().rss sampled every 2 ms (setInterval) from
// just before the encoder is created to its end, minus the baseline RSS
// (after the templates were made, the library loaded, the kernel started and
// a GC). On Linux the kernel's own high-water mark (VmHWM in
// /proc/self/status, reset through /proc/self/clear_refs at the baseline) is
// reported too, as it catches peaks between samples. Exit status 1 only on a
// wrong record count or a crash, never on the memory figure.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { scriptArgs } from './args.mjs';
import { PAGE_SIZE, fillRandom, mulberry32 } from './scenarios.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
const RECORD = 2 * MiB;
const CACHE = 64 * MiB;
const TARGET_MiB = 64 + 48;
const TEMPLATES = 8;

const { values: args, fail } = scriptArgs(
  'bench/memory.mjs',
  'usage: node --expose-gc bench/memory.mjs [--json] [--rounds n] [--block MiB] [--hwm n]\n',
  {
    json: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '4' },
    block: { type: 'string', default: '256' },
    hwm: { type: 'string' },
  },
);
const rounds = Number(args.rounds);
const blockSize = Number(args.block) * MiB;
if (!Number.isSafeInteger(rounds) || rounds < 1) fail('--rounds must be a positive integer');
if (!Number.isSafeInteger(blockSize) || blockSize <= 0 || blockSize % RECORD !== 0) fail('--block must be a positive multiple of 2 (MiB)');
const hwm = args.hwm !== undefined ? Number(args.hwm) : undefined;
if (hwm !== undefined && !(Number.isSafeInteger(hwm) && hwm >= 1)) fail('--hwm must be a positive integer');

const distEntry = join(HERE, '..', 'dist', 'index.js');
if (!existsSync(distEntry)) {
  process.stderr.write('bench/memory.mjs: dist/index.js not found: run `npm run build` first\n');
  process.exit(2);
}
const { XbzrleEncodeStream, allocPages, freePages } = /** @type {import('./lib/package.mjs').Lib} */ (await import(pathToFileURL(distEntry).href));

/** @param {string} line */
const log = (line) => process.stdout.write(`${line}\n`);
const gc = globalThis.gc ?? (() => {});
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- inputs
/** @type {Buffer[]} */
const templates = [];
for (let t = 0; t < TEMPLATES; t++) {
  const b = Buffer.alloc(RECORD);
  fillRandom(b, mulberry32(0x5eed0000 + t));
  for (let p = 7; p < RECORD / PAGE_SIZE; p += 8) b.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  templates.push(b);
}

/**
 * @param {number} round
 * @param {number} offset
 */
function makeRecord(round, offset) {
  const data = Buffer.allocUnsafe(RECORD);
  templates[(offset / RECORD) % TEMPLATES].copy(data);
  if (round > 0) {
    const rand = mulberry32((round * 0x9e3779b1) ^ (offset / PAGE_SIZE));
    for (let start = rand() % 1111; start < RECORD; start += 1111) {
      const end = Math.min(start + 12, RECORD);
      for (let j = start; j < end; j++) data[j] ^= (rand() % 255) + 1;
    }
  }
  return data;
}

// ---- memory sampling
const readHwm = () => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
};
const resetHwm = () => {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
};

// Start the SIMD kernel (if any) before the baseline, so its module and first memory page are not counted.
freePages(allocPages(1));
gc();
await sleep(50);
gc();
const baseline = process.memoryUsage().rss;
const hwmReset = resetHwm();
let peak = baseline;
const sampler = setInterval(() => {
  const rss = process.memoryUsage().rss;
  if (rss > peak) peak = rss;
}, 2);

// ---- the encode
let bytesOut = 0;
const sink = new Writable({
  write(chunk, _encoding, callback) {
    bytesOut += chunk.length;
    callback();
  },
});
const t0 = performance.now();
const enc = new XbzrleEncodeStream({
  cacheSize: CACHE,
  blocks: [{ id: 'pc.ram', length: blockSize }],
  ...(hwm !== undefined ? { writableHighWaterMark: hwm } : {}),
});
const finished = new Promise((resolve, reject) => {
  sink.on('finish', resolve);
  sink.on('error', reject);
  enc.on('error', reject);
});
enc.pipe(sink);
const waitDrain = () => new Promise((resolve) => enc.once('drain', resolve));
let bytesIn = 0;
for (let round = 0; round < rounds; round++) {
  for (let offset = 0; offset < blockSize; offset += RECORD) {
    const data = makeRecord(round, offset);
    bytesIn += data.length;
    if (!enc.write({ block: 'pc.ram', offset, data })) await waitDrain();
  }
  if (round < rounds - 1) await new Promise((resolve, reject) => enc.sync((err) => (err ? reject(err) : resolve(undefined))));
}
enc.end();
await finished;
const seconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
const last = process.memoryUsage().rss;
if (last > peak) peak = last;
const hwmPeak = hwmReset ? readHwm() : null;

const r = enc.stats.records;
const pagesIn = bytesIn / PAGE_SIZE;
const pagesOut = r.PAGE + r.ZERO + r.XBZRLE;
const ok = pagesOut === pagesIn;
const result = {
  description: `${(rounds * blockSize) / MiB} MiB in: ${blockSize / MiB} MiB block × ${rounds} rounds, ${RECORD / MiB} MiB records`,
  bytesIn,
  bytesOut,
  cacheMiB: CACHE / MiB,
  writableHighWaterMark: hwm ?? 16,
  records: { PAGE: r.PAGE, ZERO: r.ZERO, XBZRLE: r.XBZRLE, EOS: r.EOS },
  baselineMiB: baseline / MiB,
  peakMiB: peak / MiB,
  peakDeltaMiB: (peak - baseline) / MiB,
  hwmDeltaMiB: hwmPeak !== null ? (hwmPeak - baseline) / MiB : null,
  targetMiB: TARGET_MiB,
  seconds,
  mbps: bytesIn / seconds / 1e6,
  ok,
};
/**
 * @param {number | null} x
 * @param {number} [d]
 */
const fmt = (x, d = 1) => (x === null ? 'n/a' : x.toFixed(d));
const worst = Math.max(result.peakDeltaMiB, result.hwmDeltaMiB ?? 0);
log(
  `memory: ${result.description}, ${CACHE / MiB} MiB cache: baseline RSS ${fmt(result.baselineMiB)} MiB,` +
    ` peak − baseline ${fmt(result.peakDeltaMiB)} MiB (sampled every 2 ms), ${fmt(result.hwmDeltaMiB)} MiB (VmHWM);` +
    ` target < ${TARGET_MiB} MiB: ${worst < TARGET_MiB ? 'met' : 'NOT met'}; ${fmt(result.mbps, 0)} MB/s, ${fmt(seconds)} s`,
);
log(`memory: records PAGE ${r.PAGE}, ZERO ${r.ZERO}, XBZRLE ${r.XBZRLE}, EOS ${r.EOS}; ${bytesOut} bytes out`);
if (!ok) log(`MEMORY BENCH FAILURE: ${pagesOut} page records out for ${pagesIn} pages in`);
if (args.json) log(JSON.stringify(result));
process.exitCode = ok ? 0 : 1;
