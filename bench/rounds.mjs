// Encoder rounds in one process, every configuration side by side: each
// configuration (a thread count of this build, or of another built copy of the
// package with --before) gets an encoder of its own over the same pages
// (allocPages memory of its own package, the cache as large as the image), and
// the rounds alternate between two images, so every round after the first two
// is a round 2 (hits against the image before). Round r of every configuration
// runs before round r + 1 of any, the order reversed every other round; the
// first two rounds (misses, page faults, workers starting) are not counted.
// Medians and first quartiles of the round times; ratios to the first
// configuration. Less noisy on a shared machine than a fresh encoder per
// repetition (bench/threads.mjs), and it shows what a long migration sees.
//
//   npm run build && node bench/rounds.mjs [--size MiB] [--rounds N] [--threads 1,2] [--before DIR] [--reuse] [SCENARIO...]
//
// --before DIR adds DIR/dist/index.js (another built copy of the package) with the same thread counts.
// --reuse adds every configuration again with encodeRounds' reuseChunks (the bench consumes each
// chunk before it asks for the next, so the output's memory can be reused).
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { generate, selectScenarios } from './scenarios.mjs';
import { loadPackage } from './lib/package.mjs';
import { MiB } from './lib/options.mjs';
import { quantile } from './lib/timing.mjs';

/** @typedef {import('./lib/package.mjs').Lib} Lib */
/** @typedef {{ block: string, offset: number, data: Uint8Array }[]} Round */

const args = process.argv.slice(2);
let size = 128 * MiB;
let rounds = 16;
let counts = [1, 2];
/** @type {string | null} */
let before = null;
let reuse = false;
/** @type {string[]} */
const names = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--size') size = Number(args[++i]) * MiB;
  else if (a === '--rounds') rounds = Math.max(3, Number(args[++i]));
  else if (a === '--threads') counts = String(args[++i]).split(',').map(Number);
  else if (a === '--before') before = String(args[++i]);
  else if (a === '--reuse') reuse = true;
  else if (a !== undefined) names.push(a);
}
const PS = 4096;
const RECORD = 4 * MiB;

/** @type {{ label: string, lib: Lib }[]} */
const builds = [{ label: 'this', lib: await loadPackage() }];
if (before !== null) builds.push({ label: 'before', lib: /** @type {Lib} */ (await import(pathToFileURL(resolve(before, 'dist', 'index.js')).href)) });

/**
 * An encoder fed one round at a time: `round()` feeds a round and resolves
 * once the encoder asks for the next (the round is encoded and its chunks
 * consumed), with its time in ms.
 * @param {Lib} lib @param {number} threads
 */
function driver(lib, threads, reuseChunks = false) {
  /** @type {(item: Round | null) => void} */
  let give = () => {};
  /** @type {() => void} */
  let asked = () => {};
  const askedP = () => new Promise((r) => (asked = () => r(undefined)));
  let waiting = askedP();
  const source = (async function* () {
    for (;;) {
      /** @type {Round | null} */
      const item = await new Promise((r) => {
        give = r;
        asked();
      });
      if (item === null) return;
      yield item;
    }
  })();
  const gen = lib.encodeRounds(source, { cacheSize: size, threads, chunkSize: MiB, reuseChunks });
  let bytes = 0;
  const done = (async () => {
    for await (const c of gen) bytes += c.length;
  })();
  return {
    /** @param {Round} round */
    async round(round) {
      await waiting;
      waiting = askedP();
      const t0 = performance.now();
      give(round);
      await waiting;
      return performance.now() - t0;
    },
    async end() {
      await waiting;
      give(null);
      await done;
      return bytes;
    },
  };
}

/** @param {Uint8Array} buf @returns {Round} */
function records(buf) {
  /** @type {Round} */
  const out = [];
  for (let off = 0; off < buf.length; off += RECORD) out.push({ block: 'ram', offset: off, data: buf.subarray(off, off + RECORD) });
  return out;
}

console.log(`rounds: ${size / MiB} MiB images, ${rounds} rounds alternating two images in one encoder per configuration, interleaved; rounds 3 on: median (first quartile) ms, ratio of medians to the first row`);
for (const scenario of selectScenarios(names.length > 0 ? names : ['SPARSE', 'DENSE', 'UNCHANGED'])) {
  const g = generate(scenario, size);
  const configs = builds.flatMap(({ label, lib }) => {
    /** @param {Uint8Array} buf */
    const inKernel = (buf) => {
      const pages = lib.allocPages(buf.length / PS);
      pages.set(buf);
      return pages;
    };
    const images = [records(inKernel(g.old)), records(inKernel(g.new))];
    return (reuse ? [false, true] : [false]).flatMap((ru) => counts.map((n) => ({ label: `${label} ×${n}${ru ? ' reuse' : ''}`, images, drive: driver(lib, n, ru), times: /** @type {number[]} */ ([]) })));
  });
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? configs : [...configs].reverse();
    for (const c of order) {
      const ms = await c.drive.round(/** @type {Round} */ (c.images[r % 2]));
      if (r >= 2) c.times.push(ms);
    }
  }
  /** @type {Set<number>} */
  const sizes = new Set();
  for (const c of configs) sizes.add(await c.drive.end());
  if (sizes.size !== 1) throw new Error(`${scenario.name}: the configurations wrote streams of different lengths (${[...sizes].join(', ')})`);
  const first = quantile(configs[0]?.times ?? [], 0.5);
  for (const c of configs) {
    const med = quantile(c.times, 0.5);
    console.log(`${scenario.name.padEnd(10)} ${c.label.padEnd(12)} ${med.toFixed(1).padStart(7)} (${quantile(c.times, 0.25).toFixed(1)}) ms  ${(first / med).toFixed(2)} ×`);
  }
}
