// The stream table: XbzrleEncodeStream round 2 (after an untimed round 1)
// on ordinary and on allocPages record data, and XbzrleDecodeStream into a
// MemoryPageStore; the decoded image and the two encoders' bytes checked.
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { PAGE_SIZE } from '../scenarios.mjs';
import { MiB } from './options.mjs';
import { Best, MB } from './timing.mjs';

/** Bytes per PageRecord written to the encoder. */
export const STREAM_RUN = 2 * MiB;
/** The encoder's page cache. */
export const STREAM_CACHE = 64 * MiB;
const BLOCK = 'pc.ram';

/** @typedef {InstanceType<import('./package.mjs').Lib['XbzrleEncodeStream']>} EncodeStream */
/** @typedef {InstanceType<import('./package.mjs').Lib['XbzrleDecodeStream']>} DecodeStream */

/**
 * @typedef {object} StreamRow
 * @property {string} scenario
 * @property {number | null} encodeMBps
 * @property {number | null} allocEncodeMBps
 * @property {number} round2StreamBytes
 * @property {number} round2StreamPct
 * @property {number} round2PageRecords
 * @property {number | null} decodeMBps
 * @property {{ encode: number[], allocEncode: number[], decode: number[] }} runs
 * @property {{ PAGE: number, ZERO: number, XBZRLE: number, EOS: number }} records
 * @property {number} overflow
 * @property {boolean} ok
 * @property {number | null} [codecMBps] the codec table's SIMD encode (buffers), set by the caller
 * @property {number | null} [allocCodecMBps] the codec table's SIMD encode (allocPages), set by the caller
 */

/**
 * Writes `buf` to the encoder as PageRecords of STREAM_RUN bytes, honouring backpressure.
 * @param {EncodeStream} enc
 * @param {Uint8Array} buf
 */
async function writeRuns(enc, buf) {
  for (let off = 0; off < buf.length; off += STREAM_RUN) {
    const data = buf.subarray(off, Math.min(off + STREAM_RUN, buf.length));
    if (!enc.write({ block: BLOCK, offset: off, data })) await once(enc, 'drain');
  }
}

/**
 * Writes byte chunks to the decoder, honouring backpressure; resolves when the last one was processed.
 * @param {DecodeStream} dec
 * @param {Buffer[]} chunks
 */
async function writeChunks(dec, chunks) {
  for (let k = 0; k < chunks.length; k++) {
    if (k === chunks.length - 1) {
      await new Promise((resolve, reject) => dec.write(chunks[k], (err) => (err ? reject(err) : resolve(undefined))));
    } else if (!dec.write(chunks[k])) {
      await once(dec, 'drain');
    }
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * One encode round 1 (untimed) + round 2 (timed); returns the stream bytes of both rounds and the timing.
 * @param {import('./package.mjs').Lib} lib
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 */
async function encodeStreamOnce(lib, oldBuf, newBuf) {
  const enc = new lib.XbzrleEncodeStream({ cacheSize: STREAM_CACHE, blocks: [{ id: BLOCK, length: oldBuf.length }] });
  /** @type {Buffer[]} */
  const round1 = [];
  /** @type {Buffer[]} */
  const round2 = [];
  let target = round1;
  let round2Bytes = 0;
  enc.on('data', (/** @type {Buffer} */ chunk) => {
    target.push(chunk);
    if (target === round2) round2Bytes += chunk.length;
  });
  const ended = once(enc, 'end');
  await writeRuns(enc, oldBuf);
  await new Promise((resolve, reject) => enc.sync((err) => (err ? reject(err) : resolve(undefined))));
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

/**
 * Decodes round 1 (untimed) then round 2 (timed) into a default MemoryPageStore.
 * @param {import('./package.mjs').Lib} lib
 * @param {Buffer[]} round1
 * @param {Buffer[]} round2
 */
async function decodeStreamOnce(lib, round1, round2) {
  const dec = new lib.XbzrleDecodeStream({ emitPages: false });
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

/**
 * @param {Buffer[]} a
 * @param {Buffer[]} b
 */
const sameBytes = (a, b) => Buffer.compare(Buffer.concat(a), Buffer.concat(b)) === 0;

/**
 * The first byte where two buffers differ (the shorter length when one is a prefix of the other).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
function firstDifferentByte(a, b) {
  let at = 0;
  while (at < Math.min(a.length, b.length) && a[at] === b[at]) at++;
  return at;
}

/**
 * The stream row of one scenario: `--stream-runs` timed runs after one
 * untimed warm-up (so the first scenario is not measured on cold code).
 * @param {import('./codec-bench.mjs').BenchContext} ctx
 * @param {import('../scenarios.mjs').Scenario} scenario
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 * @param {Uint8Array} oldA the same bytes in allocPages memory
 * @param {Uint8Array} newA
 * @returns {Promise<StreamRow>}
 */
export async function streamBench(ctx, scenario, oldBuf, newBuf, oldA, newA) {
  const { lib, options } = ctx;
  const { size } = options;
  const enc = new Best();
  const encA = new Best();
  const dec = new Best();
  let allocSame = true;
  /** @type {{ e: Awaited<ReturnType<typeof encodeStreamOnce>>, d: Awaited<ReturnType<typeof decodeStreamOnce>> } | null} */
  let last = null;
  // Run 0 is an untimed warm-up, so the first scenario is not measured on cold (unoptimised) stream code.
  for (let run = 0; run <= options.streamRuns; run++) {
    const e = await encodeStreamOnce(lib, oldBuf, newBuf);
    const ea = await encodeStreamOnce(lib, oldA, newA);
    const d = await decodeStreamOnce(lib, e.round1, e.round2);
    // Both record sources must give the same bytes.
    if (!sameBytes(e.round1, ea.round1) || !sameBytes(e.round2, ea.round2)) allocSame = false;
    if (run > 0) {
      enc.add(size / e.seconds / MB);
      encA.add(size / ea.seconds / MB);
      if (d.pageRecords > 0) dec.add((d.pageRecords * PAGE_SIZE) / d.seconds / MB);
    }
    last = { e, d };
  }
  const { e, d } = /** @type {NonNullable<typeof last>} */ (last);
  // The receiver's image must equal the new buffer.
  const image = /** @type {InstanceType<import('./package.mjs').Lib['MemoryPageStore']>} */ (d.store).read(BLOCK);
  const imageOk = image.length === newBuf.length && Buffer.compare(image, newBuf) === 0;
  if (!imageOk) {
    const at = firstDifferentByte(image, newBuf);
    ctx.fail(`STREAM FAILURE ${scenario.name}: decoded image differs from the new buffer (first at byte ${at}, page ${Math.floor(at / PAGE_SIZE)})`);
  }
  if (!allocSame) ctx.fail(`STREAM MISMATCH ${scenario.name}: the stream output differs between ordinary and allocPages record data`);
  const s = e.stats;
  return {
    scenario: scenario.name,
    encodeMBps: enc.mbps,
    allocEncodeMBps: encA.mbps,
    round2StreamBytes: e.round2Bytes,
    round2StreamPct: (100 * e.round2Bytes) / size,
    round2PageRecords: d.pageRecords,
    decodeMBps: dec.mbps,
    runs: { encode: enc.all, allocEncode: encA.all, decode: dec.all },
    records: { PAGE: s.records.PAGE, ZERO: s.records.ZERO, XBZRLE: s.records.XBZRLE, EOS: s.records.EOS },
    overflow: s.overflow,
    ok: imageOk && allocSame,
  };
}
