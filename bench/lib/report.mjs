// What the bench prints: the header, one progress line per measurement, and
// the Markdown tables at the end (the same figures go to --json).
import { PAGE_SIZE } from '../scenarios.mjs';
import { PEER_NAMES } from '../peers.mjs';
import { MiB } from './options.mjs';
import { STREAM_CACHE, STREAM_RUN } from './stream-bench.mjs';

/** @param {string} line */
export const log = (line) => process.stdout.write(`${line}\n`);

/**
 * @param {number | null | undefined} x
 * @param {number} [digits]
 */
export const fmt = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));

/**
 * @param {number | null | undefined} a
 * @param {number | null | undefined} b
 */
export const fmtRatio = (a, b) => (a != null && b != null && a > 0 && b > 0 ? (a / b).toFixed(2) : 'n/a');

/**
 * A paired ratio as "median (q1–q3)".
 * @param {import('./timing.mjs').Spread | null | undefined} x
 */
export const fmtSpread = (x) => (x ? `${x.median.toFixed(2)} (${x.q1.toFixed(2)}–${x.q3.toFixed(2)})` : 'n/a');

const INDENT = ''.padEnd(10);

/**
 * @typedef {object} PeerRow
 * @property {string} scenario
 * @property {number} xbzrleWirePct what XBZRLE puts on the wire, % of the bytes
 * @property {number | null} simdEncodeMBps
 * @property {Record<string, { mbps: number, pct: number, bytes: number, version: string }>} results by peer name
 */

/**
 * @typedef {object} MemoryResult what bench/memory.mjs --json prints last
 * @property {string} description
 * @property {number} cacheMiB
 * @property {number} peakDeltaMiB
 * @property {number | null} hwmDeltaMiB
 * @property {number} targetMiB
 * @property {number} mbps
 * @property {number} seconds
 */

/**
 * The lines printed before the first scenario.
 * @param {import('./options.mjs').Options} o
 * @param {{ cpu: string, cpus: number, node: string, v8: string, platform: string }} m
 * @param {boolean} simdOn
 * @returns {string[]}
 */
export function headerLines(o, m, simdOn) {
  const lines = [
    `xbzrle bench: ${o.quick ? 'quick, ' : ''}${o.size / MiB} MiB per scenario, ${PAGE_SIZE}-byte pages, dlen ${PAGE_SIZE}`,
    `machine: ${m.cpu} x${m.cpus}, node ${m.node} (V8 ${m.v8}), ${m.platform}`,
    `timing: ${o.reps} interleaved round(s) per scenario [C, TS, SIMD, SIMD-alloc, memcmp, decode, decode-alloc], best of each kept;` +
      ` Benchmark.js maxTime ${o.jsMaxTime}s per JS measurement, C ${o.cSeconds}s per loop; streams best of ${o.streamRuns}`,
  ];
  if (o.pairs > 0) lines.push(`paired: ${o.pairs} rotating turns of [C, SIMD, SIMD-alloc] per scenario, one sample each; the median per-pair ratio is reported`);
  if (o.cpu !== null) lines.push(`pinned: this process, its threads and its children on CPU ${o.cpu} (taskset)`);
  lines.push(`SIMD kernel in this process: ${simdOn ? 'active' : 'NOT AVAILABLE (the SIMD columns measure the TypeScript path)'}`);
  return lines;
}

/**
 * The progress lines of a codec row (the paired one when there is a paired phase).
 * @param {import('./codec-bench.mjs').CodecRow} row
 * @returns {string[]}
 */
export function codecLines(row) {
  const lines = [
    `${row.scenario.padEnd(10)} encode TS ${fmt(row.tsEncodeMBps)} | SIMD ${fmt(row.simdEncodeMBps)} | SIMD-alloc ${fmt(row.allocEncodeMBps)}` +
      ` | C ${fmt(row.cEncodeMBps)} | memcmp ${fmt(row.memcmpMBps)} | decode ${fmt(row.decodeMBps)} | decode-alloc ${fmt(row.allocDecodeMBps)} MB/s | size ${fmt(row.encodedPct, 2)}% | ${row.match}`,
  ];
  const p = row.paired;
  if (p) {
    lines.push(
      `${INDENT} paired (${p.pairs}): SIMD/C ${fmtSpread(p.simdOverC)} | SIMD-alloc/C ${fmtSpread(p.allocOverC)}` +
        ` | medians C ${fmt(p.cMedianMBps)}, SIMD ${fmt(p.simdMedianMBps)}, SIMD-alloc ${fmt(p.allocMedianMBps)} MB/s`,
    );
  }
  return lines;
}

/** @param {import('./stream-bench.mjs').StreamRow} srow */
export const streamLine = (srow) =>
  `${INDENT} stream encode ${fmt(srow.encodeMBps)} | alloc ${fmt(srow.allocEncodeMBps)} | stream decode ${fmt(srow.decodeMBps)} MB/s` +
  ` | round-2 stream ${fmt(srow.round2StreamPct, 2)}% | ${srow.ok ? 'ok' : 'FAILED'}`;

/** @param {PeerRow['results']} results */
export const peersLine = (results) =>
  `${INDENT} peers ${PEER_NAMES.map((n) => {
    const r = results[n];
    return `${n} ${r ? `${fmt(r.mbps)} MB/s ${fmt(r.pct, 2)}%` : 'skipped'}`;
  }).join(' | ')}`;

/** @param {number} ms */
export const elapsedLine = (ms) => `${INDENT} (${(ms / 1000).toFixed(1)} s)`;

/**
 * @param {import('./options.mjs').Options} o
 * @param {import('./codec-bench.mjs').CodecRow[]} rows
 * @returns {string[]}
 */
function codecTable(o, rows) {
  const lines = [
    '',
    `### Codec, ${o.size / MiB} MiB of ${PAGE_SIZE}-byte pages per scenario (MB/s = 10^6 bytes/s; best of ${o.reps} interleaved round(s)` +
      `${o.pairs > 0 ? `; paired: median (quartiles) of ${o.pairs} per-pair ratios` : ''})`,
    '',
    '| scenario | encoded % | overflow pages | TS encode | SIMD encode (buffers) | SIMD encode (allocPages) | C encode | TS/C | SIMD/C | SIMD-alloc/C' +
      ' | SIMD/C paired | SIMD-alloc/C paired' +
      ' | memcmp | SIMD/memcmp | SIMD-alloc/memcmp | decode (buffers) | decode (allocPages) | C decode | output |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${fmt(r.encodedPct, 2)} | ${r.overflowPages} | ${fmt(r.tsEncodeMBps)} | ${fmt(r.simdEncodeMBps)} | ${fmt(r.allocEncodeMBps)}` +
        ` | ${fmt(r.cEncodeMBps)} | ${fmtRatio(r.tsEncodeMBps, r.cEncodeMBps)} | **${fmtRatio(r.simdEncodeMBps, r.cEncodeMBps)}** | **${fmtRatio(r.allocEncodeMBps, r.cEncodeMBps)}**` +
        ` | **${fmtSpread(r.paired?.simdOverC)}** | **${fmtSpread(r.paired?.allocOverC)}**` +
        ` | ${fmt(r.memcmpMBps)} | ${fmtRatio(r.simdEncodeMBps, r.memcmpMBps)} | ${fmtRatio(r.allocEncodeMBps, r.memcmpMBps)}` +
        ` | ${fmt(r.decodeMBps)} | ${fmt(r.allocDecodeMBps)} | ${fmt(r.cDecodeMBps)} | ${r.match} |`,
    );
  }
  return lines;
}

/**
 * @param {import('./options.mjs').Options} o
 * @param {import('./stream-bench.mjs').StreamRow[]} rows
 * @returns {string[]}
 */
function streamTable(o, rows) {
  if (rows.length === 0) return [];
  const lines = [
    '',
    `### Streams, round 2 of ${o.size / MiB} MiB (${STREAM_RUN / MiB} MiB PageRecords, ${STREAM_CACHE / MiB} MiB cache; best of ${o.streamRuns})`,
    '',
    '| scenario | XbzrleEncodeStream (buffers) | ÷ SIMD codec (buffers) | XbzrleEncodeStream (allocPages) | ÷ SIMD codec (allocPages)' +
      ' | round-2 stream % | page records | XbzrleDecodeStream | check |',
    '|---|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${fmt(r.encodeMBps)} | **${fmtRatio(r.encodeMBps, r.codecMBps)}** | ${fmt(r.allocEncodeMBps)} | **${fmtRatio(r.allocEncodeMBps, r.allocCodecMBps)}**` +
        ` | ${fmt(r.round2StreamPct, 2)} | ${r.round2PageRecords} | ${fmt(r.decodeMBps)} | ${r.ok ? 'ok' : 'FAILED'} |`,
    );
  }
  return lines;
}

/**
 * @param {import('./options.mjs').Options} o
 * @param {PeerRow[]} rows
 * @param {string[]} missing peers not installed
 * @returns {string[]}
 */
function peerTable(o, rows, missing) {
  if (rows.length === 0) return [];
  const lines = [
    '',
    `### Peers: XOR of old and new page, then one compressor call per page (first ${o.peerSize / MiB} MiB of each scenario)`,
    '',
    `| scenario | XBZRLE size % | XBZRLE SIMD encode (buffers) | ${PEER_NAMES.map((n) => `${n} MB/s | ${n} size %`).join(' | ')} |`,
    `|---|--:|--:|${PEER_NAMES.map(() => '--:|--:|').join('')}`,
  ];
  for (const r of rows) {
    const cells = PEER_NAMES.map((n) => {
      const x = r.results[n];
      return x ? `${fmt(x.mbps)} | ${fmt(x.pct, 2)}` : 'skipped | skipped';
    });
    lines.push(`| ${r.scenario} | ${fmt(r.xbzrleWirePct, 2)} | ${fmt(r.simdEncodeMBps)} | ${cells.join(' | ')} |`);
  }
  if (missing.length > 0) lines.push(`\n${missing.join(', ')}: skipped (run npm run bench:peers)`);
  return lines;
}

/**
 * @param {MemoryResult | null} memory
 * @returns {string[]}
 */
function memoryTable(memory) {
  if (!memory) return [];
  const met = Math.max(memory.peakDeltaMiB, memory.hwmDeltaMiB ?? 0) < memory.targetMiB;
  return [
    '',
    '### Peak memory (bench/memory.mjs)',
    '',
    '| input | cache | peak RSS − baseline (sampled) | peak RSS − baseline (VmHWM) | target | encode MB/s | time |',
    '|---|--:|--:|--:|--:|--:|--:|',
    `| ${memory.description} | ${memory.cacheMiB} MiB | ${fmt(memory.peakDeltaMiB, 1)} MiB | ${fmt(memory.hwmDeltaMiB, 1)} MiB` +
      ` | < ${memory.targetMiB} MiB (${met ? 'met' : 'NOT met'}) | ${fmt(memory.mbps)} | ${fmt(memory.seconds, 1)} s |`,
  ];
}

/**
 * The tables printed at the end of a run.
 * @param {import('./options.mjs').Options} o
 * @param {{ codecRows: import('./codec-bench.mjs').CodecRow[], streamRows: import('./stream-bench.mjs').StreamRow[], peerRows: PeerRow[], missingPeers: string[], memory: MemoryResult | null }} results
 * @returns {string[]}
 */
export function tables(o, { codecRows, streamRows, peerRows, missingPeers, memory }) {
  return [...codecTable(o, codecRows), ...streamTable(o, streamRows), ...peerTable(o, peerRows, missingPeers), ...memoryTable(memory), ''];
}
