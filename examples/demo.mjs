#!/usr/bin/env node
// Demo: live-migrate a changing synthetic memory image through XBZRLE.
//
// Builds a 32 MiB "guest RAM" image, then runs 6 rounds of guest activity
// (sparse counters, small patches, pages zeroed, pages rewritten). Each round
// is sent through XbzrleEncodeStream, the bytes go through XbzrleDecodeStream
// into a MemoryPageStore, and the receiver's RAM is checked against the
// sender's after every round. Prints QEMU-style statistics at the end.
//
// Run: npm run demo   (builds first; this file imports the built package)
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MemoryPageStore, XbzrleDecodeStream, XbzrleEncodeStream } from 'xbzrle';
import { exampleOptions } from './args.mjs';

exampleOptions('usage: npm run demo   (or node examples/demo.mjs; no options)', {});

const PAGE = 4096;
const RAM = 32 << 20;
const ROUNDS = 6;

// Deterministic pseudo-random numbers (mulberry32).
let seed = 0x5eed;
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

// Round 0: a quarter zero pages, the rest "code and data".
const ram = new Uint8Array(RAM);
for (let i = RAM / 4; i < RAM; i++) ram[i] = (rand() * 256) | 0;

function guestActivity() {
  for (let off = RAM / 2; off < RAM; off += 1024) ram[off] = (ram[off] + 1) & 0xff; // counters every 1 KiB in the upper half
  for (let k = 0; k < 300; k++) {
    const at = Math.floor(rand() * (RAM - 64));
    for (let i = 0; i < 64; i++) ram[at + i] = (rand() * 256) | 0; // 64-byte patches
  }
  for (let k = 0; k < 40; k++) {
    const page = Math.floor(rand() * (RAM / PAGE)) * PAGE;
    if (k % 2) ram.fill(0, page, page + PAGE); // freed pages
    else for (let i = page; i < page + PAGE; i++) ram[i] = (rand() * 256) | 0; // rewritten pages
  }
}

const blocks = [{ id: 'pc.ram', length: RAM }];
const enc = new XbzrleEncodeStream({ blocks, cacheSize: 64 << 20 });
const store = new MemoryPageStore();
const dec = new XbzrleDecodeStream({ store, emitPages: false });
const wire = new PassThrough();
let wireBytes = 0;
wire.on('data', (c) => (wireBytes += c.length));

const started = process.hrtime.bigint();
const receiving = pipeline(enc, wire, dec, new Writable({ objectMode: true, write: (_p, _e, cb) => cb() }));
const RUN = 2 << 20; // records of 512 pages

/** @type {[round: number, bytes: number, same: boolean][]} */
const sizes = [];
for (let round = 0; round < ROUNDS; round++) {
  if (round > 0) guestActivity();
  const before = wireBytes;
  for (let off = 0; off < RAM; off += RUN) {
    // Copy: the guest keeps running while the record waits in the stream.
    if (!enc.write({ block: 'pc.ram', offset: off, data: ram.slice(off, off + RUN) })) {
      await new Promise((r) => enc.once('drain', r));
    }
  }
  await new Promise((r) => enc.sync(r));
  await new Promise((r) => setImmediate(r));
  // Wait until the receiver has consumed everything sent so far.
  while (dec.stats.transferred < enc.stats.transferred) await new Promise((r) => setImmediate(r));
  const same = Buffer.compare(store.read('pc.ram'), ram) === 0;
  sizes.push([round, wireBytes - before, same]);
  if (!same) {
    console.error(`round ${round}: receiver RAM differs from sender RAM`);
    process.exit(1);
  }
}
enc.end();
await receiving;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;

/** @param {number} n */
const mib = (n) => (n / 1048576).toFixed(2).padStart(8) + ' MiB';
console.log(`xbzrle demo: ${RAM >> 20} MiB of guest RAM, ${ROUNDS} rounds, ${PAGE}-byte pages\n`);
console.log('round  sent on the wire  of RAM   receiver == sender');
for (const [round, bytes, same] of sizes) {
  console.log(`${String(round).padStart(5)}  ${mib(bytes)}      ${((100 * bytes) / RAM).toFixed(2).padStart(6)}%  ${same ? 'yes' : 'NO'}`);
}
const s = enc.stats.toJSON();
console.log('\nencoder statistics (query-migrate shape):');
/** @type {[string, string | number][]} */
const rows = [
  ['ram.transferred', s.ram.transferred],
  ['ram.normal (PAGE records)', s.ram.normal],
  ['ram.duplicate (ZERO records)', s.ram.duplicate],
  ['ram.skipped (unchanged hits)', s.ram.skipped],
  ['ram.dirty-sync-count', s.ram['dirty-sync-count']],
  ['xbzrle-cache.cache-size', s['xbzrle-cache']['cache-size']],
  ['xbzrle-cache.pages (hits)', s['xbzrle-cache'].pages],
  ['xbzrle-cache.bytes', s['xbzrle-cache'].bytes],
  ['xbzrle-cache.cache-miss', s['xbzrle-cache']['cache-miss']],
  ['xbzrle-cache.cache-miss-rate', s['xbzrle-cache']['cache-miss-rate'].toFixed(4)],
  ['xbzrle-cache.overflow', s['xbzrle-cache'].overflow],
  ['xbzrle-cache.encoding-rate', s['xbzrle-cache']['encoding-rate'].toFixed(2)],
  ['XBZRLE records', s.records.XBZRLE],
];
for (const [k, v] of rows) console.log(`  ${k.padEnd(30)} ${v}`);
const raw = RAM * ROUNDS;
console.log(`\n${mib(raw)} of pages sent as ${mib(s.ram.transferred)} (${((100 * s.ram.transferred) / raw).toFixed(2)}%), ` +
  `${(raw / 1048576 / seconds).toFixed(0)} MiB/s through encoder + decoder.`);
console.log('receiver RAM verified equal to sender RAM after every round: OK');
