// The in-process pipeline against the bare codec, same run, interleaved:
//
//   codec     encodeXbzrle(old page, new page) over every page (the kernel alone)
//   pipeline  XbzrleEncodeStream (round 2, the cache holding round 1) piped into
//             XbzrleDecodeStream with a MemoryPageStore (holding round 1), records
//             of 2 MiB, the output chunks handed straight from one to the other
//
// Prints MB/s of new-image bytes and pipeline/codec ratios (medians). Issue 15's
// target: pipeline ≥ 0.75 × codec on SPARSE.
//
//   npm run build && node bench/pipeline.mjs [--size MiB] [--reps N] [SCENARIO...]
import { performance } from 'node:perf_hooks';
import { generate, selectScenarios } from './scenarios.mjs';
import { loadPackage } from './lib/package.mjs';
import { MiB } from './lib/options.mjs';
import { quantile } from './lib/timing.mjs';

const args = process.argv.slice(2);
let size = 64 * MiB;
let reps = 5;
/** @type {string[]} */
const names = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--size') size = Number(args[++i]) * MiB;
  else if (a === '--reps') reps = Number(args[++i]);
  else if (a !== undefined) names.push(a);
}
const lib = await loadPackage();
const PS = 4096;
const RUN = 2 * MiB;
const BLOCK = 'pc.ram';

/**
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 * @param {Uint8Array} out
 */
function codecOnce(oldBuf, newBuf, out) {
  const t0 = performance.now();
  for (let off = 0; off < newBuf.length; off += PS) lib.encodeXbzrle(oldBuf.subarray(off, off + PS), newBuf.subarray(off, off + PS), out);
  return performance.now() - t0;
}

/**
 * Round 1 untimed (fills the cache and the store), round 2 timed. With
 * `verify`, the decoded image is compared with `newBuf` afterwards: done on the
 * warm-up and the last rep only, because the comparison copies the whole image
 * and collecting that copy would land in the next rep's timing.
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 * @param {boolean} verify
 */
async function pipelineOnce(oldBuf, newBuf, verify) {
  const enc = new lib.XbzrleEncodeStream({ cacheSize: 2 * size, blocks: [{ id: BLOCK, length: oldBuf.length }] });
  const store = new lib.MemoryPageStore();
  const dec = new lib.XbzrleDecodeStream({ store, emitPages: false });
  enc.on('data', (/** @type {Uint8Array} */ chunk) => {
    if (!dec.write(chunk)) enc.pause();
  });
  dec.on('drain', () => enc.resume());
  /** @param {Uint8Array} buf */
  const round = async (buf) => {
    for (let off = 0; off < buf.length; off += RUN) {
      if (!enc.write({ block: BLOCK, offset: off, data: buf.subarray(off, off + RUN) })) await new Promise((r) => enc.once('drain', r));
    }
    await new Promise((resolve, reject) => enc.sync((/** @type {unknown} */ err) => (err ? reject(err) : resolve(undefined))));
    await new Promise((r) => setImmediate(r));
  };
  await round(oldBuf);
  const t0 = performance.now();
  await round(newBuf);
  const done = new Promise((resolve, reject) => {
    dec.on('finish', resolve);
    dec.on('error', reject);
  });
  enc.on('end', () => dec.end());
  enc.end();
  await done;
  const ms = performance.now() - t0;
  const image = verify ? store.read(BLOCK) : newBuf;
  if (Buffer.compare(Buffer.from(image.buffer, image.byteOffset, image.length), Buffer.from(newBuf.buffer, newBuf.byteOffset, newBuf.length)) !== 0) throw new Error('pipeline: decoded image differs');
  store.dispose();
  return ms;
}

const scenarios = selectScenarios(names.length > 0 ? names : ['SPARSE', 'DENSE', 'UNCHANGED']);
console.log(`pipeline vs codec: ${size / MiB} MiB, ${reps} interleaved reps, medians (MB/s of new-image bytes)`);
console.log('scenario      codec MB/s   pipeline MB/s   pipeline/codec');
const out = new Uint8Array(PS);
for (const scenario of scenarios) {
  const { old: oldBuf, new: newBuf } = generate(scenario, size);
  /** @type {number[]} */
  const codec = [];
  /** @type {number[]} */
  const pipe = [];
  /** @type {number[]} */
  const ratio = [];
  await pipelineOnce(oldBuf, newBuf, true); // warm-up
  for (let r = 0; r < reps; r++) {
    const c = codecOnce(oldBuf, newBuf, out);
    const p = await pipelineOnce(oldBuf, newBuf, r === reps - 1);
    codec.push(c);
    pipe.push(p);
    ratio.push(c / p);
  }
  const mbps = (/** @type {number} */ ms) => ((size / 1e6) * 1000) / ms;
  console.log(
    `${scenario.name.padEnd(12)}  ${mbps(quantile(codec, 0.5)).toFixed(0).padStart(10)}   ${mbps(quantile(pipe, 0.5)).toFixed(0).padStart(13)}   ${quantile(ratio, 0.5).toFixed(2).padStart(14)}`,
  );
}
