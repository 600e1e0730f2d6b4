#!/usr/bin/env node
// Example: live-migrate a changing memory image over TCP into a file.
//
// Both ends run in this one script, on 127.0.0.1:
//   sender    a synthetic "guest RAM" image that keeps changing; each round it
//             writes the whole image to an XbzrleEncodeStream (page cache:
//             unchanged pages send nothing, changed ones go as XBZRLE deltas)
//             and calls sync() to end the round (EOS). The encoder's bytes go
//             to a net.Socket.
//   receiver  a net.Server whose connection is piped into an
//             XbzrleDecodeStream with a FilePageStore: the pages are rebuilt
//             straight into <tmpdir>/pc.ram.bin.
//
// After every round it prints what that round put on the wire: PAGE records
// (cache misses and overflows), ZERO records (an all-zero page goes as ZERO
// every time it is written, as in QEMU), XBZRLE deltas, and the pages that hit
// the cache unchanged and cost nothing. At the end it checks the file against
// the sender's final image, then removes the temp dir.
//
// Run:   npm run build && node examples/tcp-migrate.mjs [--size MiB] [--rounds N] [--cache-size MiB]
//        (--cache-size defaults to the image size: a smaller cache sends the pages
//        that fell out of it whole, as QEMU does)
// Exit:  0 when the receiver's file equals the sender's image, 1 otherwise.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { exampleOptions } from './args.mjs';
import { FilePageStore, XbzrleDecodeStream, XbzrleEncodeStream, blockFileName } from 'xbzrle';

const { values, usageError } = exampleOptions('usage: node examples/tcp-migrate.mjs [--size MiB] [--rounds N] [--cache-size MiB]', {
  size: { type: 'string', default: '16' },
  rounds: { type: 'string', default: '5' },
  'cache-size': { type: 'string' },
});
const PAGE = 4096;
const RAM = Number(values.size) * 1048576; // bytes of guest RAM (default 16 MiB)
const ROUNDS = Number(values.rounds);
const CACHE = values['cache-size'] === undefined ? RAM : Number(values['cache-size']) * 1048576; // page cache (default: the image)
if (!(RAM > 0 && RAM % PAGE === 0) || !(ROUNDS >= 1)) usageError('--size must be a positive number of MiB (whole pages), --rounds ≥ 1');
if (!(CACHE >= PAGE && CACHE <= 4096 * 1048576)) usageError('--cache-size must be a number of MiB from 1 page to 4096');
const BLOCK = 'pc.ram';

// ---- a guest that keeps writing to its memory --------------------------------
let seed = 0x7cb; // deterministic pseudo-random numbers (mulberry32)
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const ram = new Uint8Array(RAM); // first quarter zero, the rest "code and data"
for (let i = RAM / 4; i < RAM; i++) ram[i] = (rand() * 256) | 0;

function guestRuns() {
  for (let off = RAM / 2; off < RAM; off += 2048) ram[off] = (ram[off] + 1) & 0xff; // counters
  for (let k = 0; k < 200; k++) { // small patches
    const at = Math.floor(rand() * (RAM - 64));
    for (let i = 0; i < 64; i++) ram[at + i] = (rand() * 256) | 0;
  }
  for (let k = 0; k < 30; k++) { // pages freed (zeroed) or rewritten completely
    const page = Math.floor(rand() * (RAM / PAGE)) * PAGE;
    if (k % 2) ram.fill(0, page, page + PAGE);
    else for (let i = page; i < page + PAGE; i++) ram[i] = (rand() * 256) | 0;
  }
}

// ---- receiver: TCP -> XbzrleDecodeStream -> FilePageStore --------------------
const dir = await mkdtemp(join(tmpdir(), 'xbzrle-tcp-'));
let failed = false;
try {
  const store = new FilePageStore({ dir, fsync: false }); // one file per block: <dir>/pc.ram.bin
  const dec = new XbzrleDecodeStream({ store, emitPages: false });
  let received; // resolves once the whole stream was applied and the store finished
  const server = createServer((socket) => {
    server.close(); // one migration only
    // The decoder pushes nothing (emitPages: false); the sink lets the pipeline finish.
    received = pipeline(socket, dec, new Writable({ objectMode: true, write: (_p, _e, cb) => cb() }));
    received.catch(() => {}); // awaited below; this only avoids an unhandled rejection meanwhile
  });
  await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(0, '127.0.0.1', resolve)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());

  // ---- sender: XbzrleEncodeStream -> TCP -------------------------------------
  const socket = connect(port, '127.0.0.1');
  const enc = new XbzrleEncodeStream({ blocks: [{ id: BLOCK, length: RAM }], cacheSize: CACHE });
  const sent = pipeline(enc, socket);

  console.log(`tcp-migrate: ${RAM / 1048576} MiB of guest RAM, ${ROUNDS} rounds, 127.0.0.1:${port} -> ${join(dir, blockFileName(BLOCK))}`);
  console.log('round   on the wire   PAGE   ZERO  XBZRLE  unchanged   receiver applied');
  const started = performance.now();
  let last = { bytes: 0, PAGE: 0, ZERO: 0, XBZRLE: 0, skipped: 0 };
  const RUN = 1 << 20; // write the image in 1 MiB records
  for (let round = 1; round <= ROUNDS; round++) {
    if (round > 1) guestRuns();
    for (let off = 0; off < RAM; off += RUN) {
      // A copy: the guest may change `ram` while the record waits in the stream.
      if (!enc.write({ block: BLOCK, offset: off, data: ram.slice(off, off + RUN) })) {
        await new Promise((resolve) => enc.once('drain', resolve));
      }
    }
    await /** @type {Promise<void>} */ (new Promise((resolve, reject) => enc.sync((err) => (err ? reject(err) : resolve())))); // EOS: end of the round
    const s = enc.stats; // live counters
    const now = { bytes: s.transferred, PAGE: s.records.PAGE, ZERO: s.records.ZERO, XBZRLE: s.records.XBZRLE, skipped: s.skipped };
    // Wait until the receiver has applied the round (its byte count catches up).
    while (dec.stats.transferred < now.bytes && !dec.destroyed) await new Promise((resolve) => setTimeout(resolve, 1));
    /** @param {keyof typeof now} k */
    const d = (k) => String(now[k] - last[k]).padStart(6);
    console.log(
      `${String(round).padStart(5)}  ${((now.bytes - last.bytes) / 1048576).toFixed(2).padStart(8)} MiB ${d('PAGE')} ${d('ZERO')}  ${d('XBZRLE')}  ${d('skipped').padStart(9)}` +
        `  ${(dec.stats.transferred / 1048576).toFixed(2).padStart(8)} MiB`,
    );
    last = now;
  }
  enc.end(); // final EOS; closes the socket when flushed
  await sent;
  await received; // the decoder's flush ran store.finish(): the file is complete and closed
  const seconds = (performance.now() - started) / 1000;

  // ---- verify ----------------------------------------------------------------
  const file = await readFile(join(dir, blockFileName(BLOCK)));
  /** @param {Uint8Array} b */
  const sha = (b) => createHash('sha256').update(b).digest('hex');
  const same = file.length === RAM && Buffer.compare(file, ram) === 0;
  const s = enc.stats.toJSON();
  console.log(
    `total: ${(s.ram.transferred / 1048576).toFixed(2)} MiB on the wire for ${((RAM * ROUNDS) / 1048576).toFixed(0)} MiB of pages ` +
      `(${((100 * s.ram.transferred) / (RAM * ROUNDS)).toFixed(2)}%), cache-miss-rate ${s['xbzrle-cache']['cache-miss-rate'].toFixed(3)}, ` +
      `encoding-rate ${s['xbzrle-cache']['encoding-rate'].toFixed(1)}, ${seconds.toFixed(2)} s`,
  );
  console.log(`receiver file sha256 ${sha(file).slice(0, 16)}…, sender image sha256 ${sha(ram).slice(0, 16)}…`);
  if (same) console.log('verified: receiver file equals the sender image: OK');
  else {
    console.error('FAILED: the receiver file differs from the sender image');
    failed = true;
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
