// The codec table: per scenario, the outputs of every encoder path (C, TS
// child, SIMD on ordinary buffers, SIMD on allocPages memory) compared as a
// sanity check, then the interleaved timed rounds and the paired samples.
// (The byte-for-byte equivalence itself is test/bench-equivalence.test.ts.)
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SIZE, PAGE_SIZE } from '../scenarios.mjs';
import { CServer, runBaseline } from './c-baseline.mjs';
import { describeOutput, encodePass, pageViews, reportFirstDifference, sameOutput, summary } from './outputs.mjs';
import { ROOT } from './package.mjs';
import { Best, measure, pairedSamples } from './timing.mjs';

/**
 * What a codec run needs from the harness.
 * @typedef {object} BenchContext
 * @property {import('./package.mjs').Lib} lib
 * @property {import('./options.mjs').Options} options
 * @property {(line: string) => void} log
 * @property {(line: string) => void} fail logs a failure; the run then exits with status 1
 * @property {{ bin: string, files: import('./c-baseline.mjs').BaselineFiles, dir: string } | null} c the C baseline, if any
 * @property {import('./ts-worker.mjs').TsChild | null} ts the TS-path child, if any
 */

/**
 * @typedef {object} CodecRow
 * @property {string} scenario
 * @property {string} description
 * @property {number} pages
 * @property {number} encodedBytes
 * @property {number} encodedPct
 * @property {number} deltaPages
 * @property {number} unchangedPages
 * @property {number} overflowPages
 * @property {string} hash
 * @property {number | null} tsEncodeMBps
 * @property {number | null} simdEncodeMBps
 * @property {number | null} allocEncodeMBps
 * @property {number | null} cEncodeMBps
 * @property {number | null} memcmpMBps
 * @property {number | null} decodeMBps
 * @property {number | null} allocDecodeMBps
 * @property {number | null} cDecodeMBps
 * @property {import('./timing.mjs').Paired | null} paired
 * @property {Record<string, number[]>} runs every round's figure of each measurement
 * @property {string} match the output column: identical (…) or MISMATCH (…)
 */

/**
 * The scenario's pages as every path reads them: views of the ordinary
 * buffers, the same pages in allocPages memory, and an output page of each kind.
 * @typedef {object} CodecPages
 * @property {number} pages
 * @property {Uint8Array[]} oldViews
 * @property {Uint8Array[]} newViews
 * @property {Uint8Array} out
 * @property {Uint8Array} oldA
 * @property {Uint8Array} newA
 * @property {Uint8Array} outA
 * @property {Uint8Array[]} oldAViews
 * @property {Uint8Array[]} newAViews
 */

/**
 * @param {import('./package.mjs').Lib} lib
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 * @returns {CodecPages}
 */
function preparePages(lib, oldBuf, newBuf) {
  const pages = oldBuf.length / PAGE_SIZE;
  const oldA = lib.allocPages(pages);
  const newA = lib.allocPages(pages);
  const outA = lib.allocPages(1);
  oldA.set(oldBuf);
  newA.set(newBuf);
  return {
    pages,
    oldViews: pageViews(oldBuf),
    newViews: pageViews(newBuf),
    out: new Uint8Array(PAGE_SIZE), // dlen = 4096, as QEMU's sender
    oldA,
    newA,
    outA,
    oldAViews: pageViews(oldA),
    newAViews: pageViews(newA),
  };
}

/**
 * @typedef {import('./outputs.mjs').Summary & { label: string, dump?: Buffer }} PathOutput
 */

/**
 * Encodes the scenario once on every path and compares the summaries with
 * the first (C when there is one). On a mismatch, reports the first differing
 * page and saves a reproducer. Returns the SIMD pass (its deltas in
 * `deltaArena`), the first C run, and the output column.
 * @param {BenchContext} ctx
 * @param {import('../scenarios.mjs').Scenario} scenario
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 * @param {CodecPages} p
 */
async function checkOutputs(ctx, scenario, oldBuf, newBuf, p) {
  const { lib, options, c, ts } = ctx;
  /** @type {PathOutput[]} */
  const outputs = [];
  /** @type {import('./c-baseline.mjs').BaselineResult | null} */
  let cRun = null;
  if (c) {
    writeFileSync(c.files.old, oldBuf);
    writeFileSync(c.files.new, newBuf);
    cRun = runBaseline(c.bin, c.files, options.cSeconds, true);
    outputs.push({ label: 'C', ...cRun });
    if (cRun.roundtripErrors > 0) ctx.fail(`C ROUNDTRIP FAILURE ${scenario.name}: ${cRun.roundtripErrors} page(s) (bug in bench/baseline.c)`);
  }
  if (ts) outputs.push({ label: 'TS', ...(await ts.load(scenario.name, options.size)) });
  // SIMD on ordinary buffers; the deltas are kept for the decoder.
  const deltaArena = new Uint8Array(options.size);
  const simd = encodePass(lib.encodeXbzrle, p.oldViews, p.newViews, (i) => deltaArena.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  outputs.push({ label: 'SIMD', ...summary(simd), dump: simd.dump });
  const simdA = encodePass(lib.encodeXbzrle, p.oldAViews, p.newAViews, () => p.outA);
  outputs.push({ label: 'SIMD-alloc', ...summary(simdA), dump: simdA.dump });

  const ref = /** @type {PathOutput} */ (outputs[0]);
  const bad = outputs.filter((o) => !sameOutput(o, ref));
  let match = `identical (${outputs.map((o) => o.label).join(', ')})`;
  if (bad.length > 0) {
    match = `MISMATCH (${bad.map((o) => o.label).join(', ')} vs ${ref.label})`;
    ctx.fail(`MISMATCH ${scenario.name}: ${ref.label} ${describeOutput(ref)}`);
    const dir = c?.dir ?? join(ROOT, 'bench', '.build');
    /** @param {PathOutput} o */
    const dumpOf = async (o) => {
      if (o.dump) return o.dump;
      if (o.label === 'C' && c) return readFileSync(c.files.dump);
      const path = join(dir, 'ts-out.bin');
      await /** @type {import('./ts-worker.mjs').TsChild} */ (ts).dump(path);
      const d = readFileSync(path);
      rmSync(path, { force: true });
      return d;
    };
    const refDump = await dumpOf(ref);
    for (const o of bad) {
      ctx.fail(`MISMATCH ${scenario.name}: ${o.label} ${describeOutput(o)}`);
      const where = { scenario: scenario.name, oldBuf, newBuf, dir, root: ROOT };
      for (const line of reportFirstDifference(where, ref.label, refDump, o.label, await dumpOf(o))) ctx.log(line);
    }
  }
  return { simd, deltaArena, cRun, match };
}

/**
 * The pages that have a delta, ready for the decode loops: the deltas, and a
 * copy of the old pages in an ordinary buffer and in allocPages memory.
 * @typedef {object} DecodeSet
 * @property {Uint8Array[]} deltaViews
 * @property {Uint8Array[]} workViews
 * @property {Uint8Array[]} workAViews
 * @property {number[]} deltaPageIdx
 * @property {Uint8Array} workA the allocPages copy (freed by the caller)
 */

/**
 * @param {import('./package.mjs').Lib} lib
 * @param {Uint8Array} oldBuf
 * @param {Buffer} dump the SIMD pass's dump (which pages have a delta, how long)
 * @param {Uint8Array} deltaArena the SIMD pass's deltas, one page-sized slot per page
 * @returns {DecodeSet}
 */
function prepareDecode(lib, oldBuf, dump, deltaArena) {
  const pages = oldBuf.length / PAGE_SIZE;
  const work = new Uint8Array(oldBuf);
  /** @type {Uint8Array[]} */
  const deltaViews = [];
  /** @type {Uint8Array[]} */
  const workViews = [];
  /** @type {number[]} */
  const deltaPageIdx = [];
  let pos = 0;
  for (let i = 0; i < pages; i++) {
    const r = dump.readInt32LE(pos);
    pos += 4 + Math.max(r, 0);
    if (r > 0) {
      deltaViews.push(deltaArena.subarray(i * PAGE_SIZE, i * PAGE_SIZE + r));
      workViews.push(work.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
      deltaPageIdx.push(i);
    }
  }
  // The same with the pages in allocPages memory (decodeXbzrle then decodes in the kernel's memory, in place).
  const workA = lib.allocPages(pages);
  workA.set(oldBuf);
  const workAViews = deltaPageIdx.map((i) => workA.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  return { deltaViews, workViews, workAViews, deltaPageIdx, workA };
}

/**
 * Pages of the decode set that do not equal the new page after decoding
 * (once into the ordinary copy, once into the allocPages copy, when `apply`).
 * @param {import('./package.mjs').Lib} lib
 * @param {DecodeSet} d
 * @param {Uint8Array[]} newViews
 * @param {boolean} apply decode first (the round trip) or only compare (after the timed loops)
 * @returns {number[]} indexes (into the decode set) of the failing pages, a page counted per copy
 */
function decodeErrors(lib, d, newViews, apply) {
  /** @type {number[]} */
  const errors = [];
  for (let k = 0; k < d.deltaViews.length; k++) {
    const delta = /** @type {Uint8Array} */ (d.deltaViews[k]);
    const work = /** @type {Uint8Array} */ (d.workViews[k]);
    const workA = /** @type {Uint8Array} */ (d.workAViews[k]);
    const want = /** @type {Uint8Array} */ (newViews[/** @type {number} */ (d.deltaPageIdx[k])]);
    const n = apply ? lib.decodeXbzrle(delta, work) : 0;
    if (Buffer.compare(work, want) !== 0) errors.push(k);
    if ((apply && lib.decodeXbzrle(delta, workA) !== n) || Buffer.compare(workA, want) !== 0) errors.push(k);
  }
  return errors;
}

/**
 * The measured loops: one pass over all pages each; they allocate nothing.
 * @param {import('./package.mjs').Lib} lib
 * @param {CodecPages} p
 * @param {DecodeSet} d
 */
function passes(lib, p, d) {
  const { encodeXbzrle, decodeXbzrle } = lib;
  const { pages, oldViews, newViews, out, oldAViews, newAViews, outA } = p;
  const { deltaViews, workViews, workAViews } = d;
  // For the memcmp reference: Buffer.compare of two identical copies of the old pages reads both entirely.
  const oldB = oldViews.map((v) => Buffer.from(v.buffer, v.byteOffset, PAGE_SIZE));
  const oldAB = oldAViews.map((v) => Buffer.from(v.buffer, v.byteOffset, PAGE_SIZE));
  const nDeltas = deltaViews.length;
  const sink = { value: 0 };
  /** @param {Uint8Array[]} olds @param {Uint8Array[]} news @param {Uint8Array} o */
  const encodeAll = (olds, news, o) => () => {
    let acc = 0;
    for (let i = 0; i < pages; i++) acc += encodeXbzrle(/** @type {Uint8Array} */ (olds[i]), /** @type {Uint8Array} */ (news[i]), o);
    sink.value ^= acc;
  };
  // Applying a delta again to a page that already holds the new bytes does the same work: no copy is timed.
  /** @param {Uint8Array[]} targets */
  const decodeAll = (targets) => () => {
    let acc = 0;
    for (let k = 0; k < nDeltas; k++) acc += decodeXbzrle(/** @type {Uint8Array} */ (deltaViews[k]), /** @type {Uint8Array} */ (targets[k]));
    sink.value ^= acc;
  };
  return {
    sink,
    nDeltas,
    encodeOrdinary: encodeAll(oldViews, newViews, out),
    encodeAlloc: encodeAll(oldAViews, newAViews, outA),
    decodeAll: decodeAll(workViews),
    decodeAllocAll: decodeAll(workAViews),
    compareAll: () => {
      let acc = 0;
      for (let i = 0; i < pages; i++) acc += Buffer.compare(/** @type {Buffer} */ (oldB[i]), /** @type {Buffer} */ (oldAB[i]));
      sink.value ^= acc;
    },
  };
}

/**
 * `--reps` interleaved rounds of [C, TS, SIMD, SIMD-alloc, memcmp, decode,
 * decode-alloc]; the best of each kept. The first C round is the checking run.
 * @param {BenchContext} ctx
 * @param {string} name scenario name
 * @param {ReturnType<typeof passes>} loops
 * @param {import('./c-baseline.mjs').BaselineResult | null} cFirst
 */
async function timedRounds(ctx, name, loops, cFirst) {
  const { options, c, ts } = ctx;
  const { size, reps, jsMaxTime } = options;
  const limits = { maxTime: jsMaxTime, minSamples: options.quick ? 2 : 5 };
  const decodedBytes = loops.nDeltas * PAGE_SIZE;
  const best = { c: new Best(), cDec: new Best(), ts: new Best(), simd: new Best(), alloc: new Best(), cmp: new Best(), dec: new Best(), decA: new Best() };
  for (let rep = 0; rep < reps; rep++) {
    if (c) {
      const cr = rep === 0 && cFirst ? cFirst : runBaseline(c.bin, c.files, options.cSeconds, false);
      best.c.add(cr.encodeMBps);
      if (cr.deltaPages > 0) best.cDec.add(cr.decodeMBps);
    }
    if (ts) best.ts.add(await ts.encode(jsMaxTime));
    best.simd.add(measure(`SIMD encode ${name}`, loops.encodeOrdinary, size, limits));
    best.alloc.add(measure(`SIMD-alloc encode ${name}`, loops.encodeAlloc, size, limits));
    best.cmp.add(measure(`memcmp ${name}`, loops.compareAll, size, limits));
    if (loops.nDeltas > 0) best.dec.add(measure(`decode ${name}`, loops.decodeAll, decodedBytes, limits));
    if (loops.nDeltas > 0) best.decA.add(measure(`decode-alloc ${name}`, loops.decodeAllocAll, decodedBytes, limits));
  }
  return best;
}

/**
 * The paired phase (C as a server, SIMD and SIMD-alloc in this process), or
 * null without the C baseline or with --pairs 0.
 * @param {BenchContext} ctx
 * @param {ReturnType<typeof passes>} loops
 */
async function pairedPhase(ctx, loops) {
  const { c, options } = ctx;
  if (!c || options.pairs === 0) return null;
  const server = new CServer(c.bin, c.files);
  try {
    const sweeps = Math.max(1, Math.round(DEFAULT_SIZE / options.size));
    return await pairedSamples(server, loops, { pairs: options.pairs, sweeps, bytesPerSweep: options.size });
  } finally {
    server.close();
  }
}

/**
 * The codec row of one scenario. Returns the allocPages copies of the old and
 * new buffers too (the stream bench reads them); the caller frees them.
 * @param {BenchContext} ctx
 * @param {import('../scenarios.mjs').Scenario} scenario
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 * @returns {Promise<{ row: CodecRow, oldA: Uint8Array, newA: Uint8Array }>}
 */
export async function codecBench(ctx, scenario, oldBuf, newBuf) {
  const { lib, options, c } = ctx;
  const { size } = options;
  const p = preparePages(lib, oldBuf, newBuf);
  /** @type {DecodeSet | null} */
  let d = null;
  try {
    const { simd, deltaArena, cRun, match } = await checkOutputs(ctx, scenario, oldBuf, newBuf, p);

    // Round trip: each delta applied to a copy of the old page gives the new page.
    d = prepareDecode(lib, oldBuf, simd.dump, deltaArena);
    const roundTripErrors = decodeErrors(lib, d, p.newViews, true).length;
    if (roundTripErrors > 0) {
      ctx.fail(`ROUNDTRIP FAILURE ${scenario.name}: ${roundTripErrors} page(s) differ after decodeXbzrle(encodeXbzrle(old, new), old)`);
    }

    const loops = passes(lib, p, d);
    const best = await timedRounds(ctx, scenario.name, loops, cRun);
    const paired = await pairedPhase(ctx, loops);
    if (loops.sink.value === 0.5) ctx.log(''); // keep `sink` observable

    const after = decodeErrors(lib, d, p.newViews, false);
    if (after.length > 0) {
      const page = d.deltaPageIdx[/** @type {number} */ (after[0])];
      ctx.fail(`DECODE LOOP FAILURE ${scenario.name}: page ${page} differs after the timed decode loop`);
    }

    /** @type {CodecRow} */
    const row = {
      scenario: scenario.name,
      description: scenario.description,
      pages: p.pages,
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
    };
    return { row, oldA: p.oldA, newA: p.newA };
  } catch (err) {
    lib.freePages(p.oldA);
    lib.freePages(p.newA);
    throw err;
  } finally {
    lib.freePages(p.outA);
    if (d) lib.freePages(d.workA);
    if (c) for (const f of [c.files.old, c.files.new, c.files.dump]) rmSync(f, { force: true });
  }
}
