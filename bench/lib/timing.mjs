// Timing: Benchmark.js measurements, the best of repeated ones, quantiles,
// and the paired C/SIMD samples.
import { performance } from 'node:perf_hooks';
import Benchmark from 'benchmark';
import { CServer } from './c-baseline.mjs';

/** MB/s here means 1e6 bytes of page data per second. */
export const MB = 1e6;

/** @typedef {{ mbps: number, rme: number }} Measurement */

/**
 * Measures `fn` with Benchmark.js; returns MB/s of `bytesPerCall` and the relative margin of error.
 * @param {string} name
 * @param {() => void} fn
 * @param {number} bytesPerCall
 * @param {{ maxTime: number, minSamples: number }} limits
 * @returns {Measurement}
 */
export function measure(name, fn, bytesPerCall, { maxTime, minSamples }) {
  const bench = new Benchmark(name, fn, { maxTime, minSamples, initCount: 1 });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  return { mbps: (bench.hz * bytesPerCall) / MB, rme: bench.stats.rme };
}

/** Keeps the best (max MB/s) of repeated measurements, with the margin of error of that best one. */
export class Best {
  /** @type {number | null} */
  mbps = null;
  /** @type {number | null} */
  rme = null;
  /** @type {number[]} every figure added, rounded */
  all = [];

  /** @param {Measurement | number | null | undefined} m */
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

/**
 * The p-quantile (0..1) of numbers, linearly interpolated.
 * @param {readonly number[]} values
 * @param {number} p
 */
export function quantile(values, p) {
  const v = [...values].sort((a, b) => a - b);
  const at = (v.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, v.length - 1);
  const a = /** @type {number} */ (v[lo]);
  return a + (/** @type {number} */ (v[hi]) - a) * (at - lo);
}

/** @typedef {{ median: number, q1: number, q3: number }} Spread */

/**
 * @param {readonly number[]} values
 * @returns {Spread}
 */
export const spread = (values) => ({ median: quantile(values, 0.5), q1: quantile(values, 0.25), q3: quantile(values, 0.75) });

/**
 * @typedef {object} Paired
 * @property {number} pairs
 * @property {number} sweepsPerSample
 * @property {Spread} simdOverC
 * @property {Spread} allocOverC
 * @property {number} cMedianMBps
 * @property {number} simdMedianMBps
 * @property {number} allocMedianMBps
 * @property {{ c: number[], simd: number[], alloc: number[] }} ns every sample
 */

/**
 * Nanoseconds `sweeps` calls of `fn` take.
 * @param {() => void} fn
 * @param {number} sweeps
 */
function timeSweeps(fn, sweeps) {
  const t0 = performance.now();
  for (let k = 0; k < sweeps; k++) fn();
  return (performance.now() - t0) * 1e6;
}

/**
 * Paired samples: C (a `CServer`), SIMD on ordinary buffers and SIMD on
 * allocPages memory take turns (the order rotates every pair), each sample
 * `sweeps` passes over all pages, so the samples of one pair lie milliseconds
 * apart and share the machine's state of that moment. Returns the median and
 * quartiles of the per-pair ratios (C time ÷ SIMD time, i.e. SIMD MB/s ÷ C
 * MB/s) and each side's median MB/s.
 * @param {CServer} server
 * @param {{ encodeOrdinary: () => void, encodeAlloc: () => void }} passes one pass over all pages each
 * @param {{ pairs: number, sweeps: number, bytesPerSweep: number }} shape
 * @returns {Promise<Paired>}
 */
export async function pairedSamples(server, { encodeOrdinary, encodeAlloc }, { pairs, sweeps, bytesPerSweep }) {
  /** @type {{ sample: () => Promise<number>, ns: number[] }[]} */
  const sides = [
    { sample: () => server.sweeps(sweeps), ns: [] },
    { sample: async () => timeSweeps(encodeOrdinary, sweeps), ns: [] },
    { sample: async () => timeSweeps(encodeAlloc, sweeps), ns: [] },
  ];
  for (const side of sides) await side.sample(); // warm-up, untimed
  for (let k = 0; k < pairs; k++) {
    for (let j = 0; j < sides.length; j++) {
      const side = /** @type {(typeof sides)[number]} */ (sides[(k + j) % sides.length]);
      side.ns.push(await side.sample());
    }
  }
  const [c, simd, alloc] = /** @type {[number[], number[], number[]]} */ (sides.map((x) => x.ns));
  /** @param {number} ns */
  const mbps = (ns) => (sweeps * bytesPerSweep) / (ns / 1e9) / MB;
  /** @param {number[]} other */
  const overC = (other) => spread(c.map((t, k) => t / /** @type {number} */ (other[k])));
  return {
    pairs,
    sweepsPerSample: sweeps,
    simdOverC: overC(simd),
    allocOverC: overC(alloc),
    cMedianMBps: mbps(quantile(c, 0.5)),
    simdMedianMBps: mbps(quantile(simd, 0.5)),
    allocMedianMBps: mbps(quantile(alloc, 0.5)),
    ns: { c: c.map(Math.round), simd: simd.map(Math.round), alloc: alloc.map(Math.round) },
  };
}
