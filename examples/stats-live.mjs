#!/usr/bin/env node
// Example: watch an encoder's statistics while it runs.
//
// A guest keeps changing a memory image; the sender encodes it round after
// round with an XbzrleEncodeStream (straight into an XbzrleDecodeStream, so the
// result can be checked). Every ~200 ms a timer reads `enc.stats.toJSON()` — the
// counters are live, no event needed — and prints one compact line: rounds
// (dirty syncs), pages sent, bytes out, cache-miss-rate and encoding-rate.
//
// Half way through, the page cache is grown with setCacheSize() (while the
// stream runs, keeping its entries): the image no longer fits the small cache,
// so pages evict each other and miss; after the resize they hit and go as small
// XBZRLE deltas. Watch the per-interval miss rate fall and the encoding rate rise.
//
// Run:   npm run build && node examples/stats-live.mjs [--seconds S] [--size MiB] [--interval ms]
// Exit:  0 when the receiver's image equals the sender's and the counters add up, 1 otherwise.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { exampleOptions } from './args.mjs';
import { MemoryPageStore, XbzrleDecodeStream, XbzrleEncodeStream } from 'xbzrle';

const { values, usageError } = exampleOptions('usage: node examples/stats-live.mjs [--seconds S] [--size MiB] [--interval ms]', {
  seconds: { type: 'string', default: '2.5' },
  size: { type: 'string', default: '16' },
  interval: { type: 'string', default: '200' },
});
const PAGE = 4096;
const SIZE = Number(values.size) * 1048576;
const SECONDS = Number(values.seconds);
const INTERVAL = Number(values.interval);
if (!(SIZE > 0 && SIZE % PAGE === 0) || !(SECONDS > 0) || !(INTERVAL > 0)) usageError('--size (MiB, whole pages), --seconds and --interval must be positive');
const BLOCK = 'ram';
const SMALL_CACHE = Math.max(PAGE, SIZE / 4); // a quarter of the image: pages keep evicting each other
const BIG_CACHE = SIZE * 2;

let seed = 0x1ee7; // deterministic pseudo-random numbers (mulberry32)
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const image = new Uint8Array(SIZE);
for (let i = SIZE / 8; i < SIZE; i++) image[i] = (rand() * 256) | 0;
function guestRuns() {
  for (let off = 0; off < SIZE; off += 3 * PAGE + 64) image[off] = (image[off] + 1) & 0xff; // a counter in about every third page
  for (let k = 0; k < 20; k++) { // a few pages rewritten
    const page = Math.floor(rand() * (SIZE / PAGE)) * PAGE;
    for (let i = page; i < page + PAGE; i += 4) image[i] = (rand() * 256) | 0;
  }
}

const enc = new XbzrleEncodeStream({ blocks: [{ id: BLOCK, length: SIZE }], cacheSize: SMALL_CACHE });
const store = new MemoryPageStore();
const dec = new XbzrleDecodeStream({ store, emitPages: false });
let wire = 0;
const receiving = pipeline(
  enc,
  new Writable({ write: (chunk, _e, cb) => ((wire += chunk.length), dec.write(chunk) ? cb() : dec.once('drain', cb)), final: (cb) => (dec.end(), cb()) }),
);
const decoded = pipeline(dec, new Writable({ objectMode: true, write: (_p, _e, cb) => cb() }));

// ---- the live view: a timer that only reads enc.stats --------------------------
const started = performance.now();
let prev = enc.stats.toJSON();
let prevTime = started;
/** @param {import('xbzrle').XbzrleStatsJSON} s */
const pagesOf = (s) => s.records.PAGE + s.records.ZERO + s.records.XBZRLE + s.ram.skipped; // pages the encoder has looked at
console.log(`stats-live: ${SIZE / 1048576} MiB image, cache ${SMALL_CACHE / 1048576} MiB, grown to ${BIG_CACHE / 1048576} MiB at ${(SECONDS / 2).toFixed(1)} s; a line every ${INTERVAL} ms`);
console.log('  time  rounds     pages    sent MiB    MiB/s  miss-rate (now)  encoding-rate (now)');
let lines = 0;
function report() {
  const s = enc.stats.toJSON(); // cumulative counters, QEMU's query-migrate shape
  const now = performance.now();
  const dt = (now - started) / 1000;
  const dPages = pagesOf(s) - pagesOf(prev);
  const dMiss = s['xbzrle-cache']['cache-miss'] - prev['xbzrle-cache']['cache-miss'];
  const dHits = s['xbzrle-cache'].pages - prev['xbzrle-cache'].pages;
  const dBytes = s['xbzrle-cache'].bytes - prev['xbzrle-cache'].bytes;
  const rateNow = dBytes > 0 ? (dHits * PAGE) / dBytes : 0;
  console.log(
    `${dt.toFixed(1).padStart(6)}s ${String(s.ram['dirty-sync-count']).padStart(6)} ${String(pagesOf(s)).padStart(9)} ${(s.ram.transferred / 1048576).toFixed(2).padStart(11)}` +
      ` ${((s.ram.transferred - prev.ram.transferred) / 1048576 / ((now - prevTime) / 1000)).toFixed(1).padStart(8)}` +
      `  ${s['xbzrle-cache']['cache-miss-rate'].toFixed(3)} (${(dPages ? dMiss / dPages : 0).toFixed(3)})` +
      `      ${s['xbzrle-cache']['encoding-rate'].toFixed(1).padStart(7)} (${rateNow.toFixed(1)})`,
  );
  prev = s;
  prevTime = now;
  lines++;
}
const timer = setInterval(report, INTERVAL);

// ---- the sender: rounds until the time is up -----------------------------------
let grown = false;
const RUN = 1 << 20;
while ((performance.now() - started) / 1000 < SECONDS) {
  if (!grown && (performance.now() - started) / 1000 >= SECONDS / 2) {
    grown = true;
    console.log(`  ---- setCacheSize(${BIG_CACHE / 1048576} MiB) -> ${enc.setCacheSize(BIG_CACHE) / 1048576} MiB ----`);
  }
  for (let off = 0; off < SIZE; off += RUN) {
    // Copies: the guest changes `image` while records wait in the stream.
    if (!enc.write({ block: BLOCK, offset: off, data: image.slice(off, off + RUN) })) await new Promise((resolve) => enc.once('drain', resolve));
  }
  await /** @type {Promise<void>} */ (new Promise((resolve, reject) => enc.sync((err) => (err ? reject(err) : resolve()))));
  guestRuns();
  // Let timers run between rounds (a real sender would run in its own thread or process).
  await new Promise((resolve) => setImmediate(resolve));
}
// The last round went out before the last guestRuns(): send the image once more.
enc.write({ block: BLOCK, offset: 0, data: image.slice() });
enc.end();
await receiving;
await decoded;
clearInterval(timer);
report();

// ---- checks --------------------------------------------------------------------
const s = enc.stats.toJSON();
const checks = [
  ['receiver image equals the sender image', Buffer.compare(store.read(BLOCK), image) === 0],
  ['bytes counted on the way = ram.transferred', wire === s.ram.transferred],
  ['decoder consumed every byte', dec.stats.transferred === s.ram.transferred],
  ['ram.normal = PAGE records = cache misses + overflows', s.ram.normal === s.records.PAGE && s.ram.normal === s['xbzrle-cache']['cache-miss'] + s['xbzrle-cache'].overflow],
  ['xbzrle-cache.pages = XBZRLE records + overflows + unchanged hits', s['xbzrle-cache'].pages === s.records.XBZRLE + s['xbzrle-cache'].overflow + s.ram.skipped],
  [`at least 3 live lines printed (${lines})`, lines >= 3],
];
let failed = false;
for (const [what, ok] of checks) {
  if (!ok) failed = true;
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
}
console.log(failed ? 'FAILED' : `verified: ${s.ram['dirty-sync-count']} rounds, ${(s.ram.transferred / 1048576).toFixed(2)} MiB sent, stats consistent: OK`);
process.exitCode = failed ? 1 : 0;
