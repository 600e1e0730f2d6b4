#!/usr/bin/env node
// Soak test (issue 3; `npm run soak`, not in CI): random migration rounds of a
// changing multi-block memory through XbzrleEncodeStream -> TCP (127.0.0.1,
// both ends in this process) -> XbzrleDecodeStream, for --minutes minutes,
// checking that the receiver's memory equals the source.
//
//   npm run build && node scripts/soak.mjs [--minutes 30] [--seed N] [--session-minutes 5]
//        [--json] [--quiet]
//
// Everything random comes from one seeded PRNG (mulberry32); the seed is
// printed first, and `--seed` replays a run (timing, and so where sessions and
// asynchronous cache resizes fall, still varies).
//
// The run is a series of sessions (a new connection, encoder, decoder and
// memory layout every --session-minutes, default 5, or one session for short
// runs). A session picks:
//   - a page size (4 KiB mostly; 1, 2, 8 or 16 KiB sometimes),
//   - 2 or 3 blocks (tens of MiB, a few MiB, sometimes a small ROM-like one;
//     names with '/', ':', '@', sometimes non-ASCII), declared through MEM_SIZE,
//   - the encoder's cache size, chunkSize and writableHighWaterMark, and
//     whether the decoder emits pages (a sink then checks ZERO pages and
//     counts every page).
// Each round mutates the memory (sparse byte runs, whole pages rewritten,
// pages zeroed, pages copied from elsewhere, hot counters, big regions) and
// sends the dirty pages (or, sometimes, every page) as records of random sizes
// (1 page to 2048 pages), sometimes in shuffled order, each a fresh copy of
// a random kind (Uint8Array, Buffer, a view at an odd byteOffset, a
// SharedArrayBuffer view, an allocPages buffer). Between records: random
// setCacheSize() calls, and timers that resize the cache at random moments
// while the encoder works; occasional extra sync({ final: false }); pages
// dirtied again in the middle of a round (sent in the next round). Each round
// ends with sync(). On the wire, a Transform re-splits the encoder's chunks
// at random sizes (1 byte to 300 KB) before the socket, and another re-splits
// what the socket delivers before the decoder.
// Checkpoints (every few rounds, and at the end of each session): the sender
// waits until the decoder has parsed every byte sent, then compares every
// page of every block. A session ends with a last round after
// sync({ final: true }) (QEMU's last stage), end(), and a final comparison,
// plus a check that the decoder saw exactly the records the encoder sent.
//
// Prints at checkpoints (at most every 10 s; not with --quiet) and at the end: sessions, rounds,
// pages and bytes in, bytes on the wire, resizes, syncs, checkpoints, peak RSS
// (sampled every 5 ms, and VmHWM on Linux). Exit status 1 on any mismatch,
// error, or stall (no progress for 60 s).

import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { scriptArgs } from '../bench/args.mjs';
import { mulberry32 } from '../bench/scenarios.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
const STALL_MS = 60_000;

const USAGE = `usage: node scripts/soak.mjs [--minutes 30] [--seed N] [--session-minutes 5] [--json] [--quiet]
(npm run soak -- ...; see the top of this file for what a session does)
`;
const { values: args } = scriptArgs('soak', USAGE, {
  minutes: { type: 'string', default: '30' },
  seed: { type: 'string' },
  'session-minutes': { type: 'string', default: '5' },
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
});
const minutes = Number(args.minutes);
const sessionMinutes = Number(args['session-minutes']);
if (!(minutes >= 0) || !(sessionMinutes > 0)) {
  process.stderr.write('soak: --minutes must be >= 0 and --session-minutes > 0\n');
  process.exit(2);
}
const seed = args.seed !== undefined ? Number(args.seed) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
if (args.seed !== undefined && !/^\d+$/.test(args.seed)) {
  process.stderr.write('soak: --seed must be a non-negative integer\n');
  process.exit(2);
}

const distEntry = join(HERE, '..', 'dist', 'index.js');
if (!existsSync(distEntry)) {
  process.stderr.write('soak: dist/index.js not found: run `npm run build` first\n');
  process.exit(2);
}
const { XbzrleEncodeStream, XbzrleDecodeStream, MemoryPageStore, allocPages, freePages } = /** @type {typeof import('xbzrle')} */ (await import(pathToFileURL(distEntry).href));

/** @param {string} line */
const log = (line) => {
  if (!args.quiet) process.stdout.write(`${line}\n`);
};
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- seeded randomness ------------------------------------------------------

const next = mulberry32(seed);
/**
 * Integer in [lo, hi].
 * @param {number} lo
 * @param {number} hi
 */
const int = (lo, hi) => lo + (next() % (hi - lo + 1));
/** @param {number} p */
const chance = (p) => next() / 2 ** 32 < p;
/**
 * @template T
 * @param {T[]} list
 * @returns {T}
 */
const pick = (list) => list[next() % list.length];
/**
 * Fills `u8` with PRNG bytes (4 at a time).
 * @param {Uint8Array} u8
 */
function fillRandom(u8) {
  let i = 0;
  if (u8.byteOffset % 4 === 0) {
    const u32 = new Uint32Array(u8.buffer, u8.byteOffset, u8.length >>> 2);
    for (let w = 0; w < u32.length; w++) u32[w] = next();
    i = u32.length * 4;
  }
  for (; i < u8.length; i++) u8[i] = next();
}

// ---- totals and memory -------------------------------------------------------

const totals = {
  seed,
  sessions: 0,
  rounds: 0,
  records: 0,
  pagesIn: 0,
  bytesIn: 0,
  bytesOut: 0,
  wire: { PAGE: 0, ZERO: 0, XBZRLE: 0, EOS: 0, MEM_SIZE: 0, skipped: 0, overflow: 0 },
  resizes: 0,
  timerResizes: 0,
  extraSyncs: 0,
  checkpoints: 0,
  pagesVerified: 0,
  emittedPages: 0,
  dataKinds: { array: 0, buffer: 0, view: 0, shared: 0, allocPages: 0 },
  pageSizes: /** @type {Record<number, number>} */ ({}),
};
const baselineRss = process.memoryUsage.rss();
let peakRss = baselineRss;
const sampler = setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rss > peakRss) peakRss = rss;
}, 5);
sampler.unref();
function hwm() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
/** @type {number[]} */
const rssLog = []; // RSS at each checkpoint, to see a trend over a long run

// ---- one session ---------------------------------------------------------------

class SoakFailure extends Error {}

/** A Transform that re-splits chunks at random sizes. */
function splitter() {
  return new Transform({
    transform(chunk, _encoding, callback) {
      let at = 0;
      while (at < chunk.length) {
        const r = next() % 100;
        const size = r < 15 ? int(1, 16) : r < 50 ? int(17, 5000) : int(5001, 300_000);
        this.push(chunk.subarray(at, Math.min(chunk.length, at + size)));
        at += size;
      }
      callback();
    },
  });
}

/** @param {number} ps */
function chooseLayout(ps) {
  /** @param {number} bytes */
  const round = (bytes) => Math.max(ps, Math.floor(bytes / ps) * ps);
  const blocks = [
    { id: pick(['pc.ram', 'ram-node0', 'mach-virt.ram']), length: round(int(16, 48) * MiB + int(0, 255) * ps) },
    { id: pick(['0000:00:02.0/vga.vram', 'vga.vram', '0000:00:01.0/qxl.vram']), length: round(int(2, 12) * MiB + int(0, 63) * ps) },
  ];
  if (chance(0.7)) blocks.push({ id: pick(['/rom@etc/acpi/tables', 'pc.bios', 'ｒｏｍ/é-ü']), length: round(int(1, 64) * ps) });
  return blocks;
}

/**
 * @param {number} index
 * @param {number} deadline
 */
async function session(index, deadline) {
  const ps = chance(0.7) ? 4096 : pick([1024, 2048, 8192, 16384]);
  totals.pageSizes[ps] = (totals.pageSizes[ps] ?? 0) + 1;
  const layout = chooseLayout(ps);
  const cacheSizeChoice = () => {
    const r = next() % 100;
    if (r < 10) return ps * int(1, 16); // tiny
    if (r < 30) return int(ps, 64 * MiB); // anything (rounded down to a power of two pages)
    if (r < 50) return 2 ** int(Math.log2(ps) + 4, 26); // a power of two
    return 64 * MiB; // large: the whole memory fits
  };
  const encOptions = {
    pageSize: ps,
    cacheSize: cacheSizeChoice(),
    blocks: layout,
    chunkSize: pick([4096, 16384, 65536, 65536, 262144, int(1, 200_000)]),
    writableHighWaterMark: pick([1, 4, 16, 16, 64]),
  };
  const emitPages = chance(0.6);
  const xbzrle = !chance(0.05);

  // The source memory: each block partly random, partly zero.
  const mem = new Map();
  const dirty = new Map();
  for (const b of layout) {
    const m = new Uint8Array(b.length);
    const pages = b.length / ps;
    for (let p = 0; p < pages; ) {
      const run = int(1, 64);
      if (chance(0.6)) fillRandom(m.subarray(p * ps, Math.min(pages, p + run) * ps));
      p += run;
    }
    mem.set(b.id, m);
    dirty.set(b.id, new Uint8Array(pages).fill(1)); // round 1 sends everything
  }
  const totalBytes = layout.reduce((a, b) => a + b.length, 0);
  log(
    `soak: session ${index}: page size ${ps}, blocks ${layout.map((b) => `${b.id} ${(b.length / MiB).toFixed(2)} MiB`).join(', ')}; ` +
      `cache ${(encOptions.cacheSize / MiB).toFixed(2)} MiB, chunkSize ${encOptions.chunkSize}, hwm ${encOptions.writableHighWaterMark}, ` +
      `emitPages ${emitPages}, xbzrle ${xbzrle}`,
  );

  // ---- the connection
  const server = createServer();
  /** @type {Promise<import('node:net').Socket>} */
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(0, '127.0.0.1', resolve)));
  const client = connect(/** @type {import('node:net').AddressInfo} */ (server.address()).port, '127.0.0.1');
  const socketIn = await accepted;
  server.close();
  await /** @type {Promise<void>} */ (new Promise((resolve, reject) => (client.connecting ? (client.once('connect', resolve), client.once('error', reject)) : resolve())));

  /** @type {(err: unknown) => void} */
  let failReject = () => {};
  const failed = new Promise((_, reject) => (failReject = reject));
  failed.catch(() => {});
  /** @type {unknown} */
  let failure = null;
  /** @param {unknown} err */
  const fail = (err) => {
    if (failure === null) {
      failure = err;
      failReject(err);
    }
  };
  /**
   * @template T
   * @param {Promise<T>} p
   * @returns {Promise<T>}
   */
  const race = (p) => Promise.race([p, failed]);

  const enc = new XbzrleEncodeStream({ ...encOptions, xbzrle });
  const store = new MemoryPageStore();
  const dec = new XbzrleDecodeStream({ pageSize: ps, store, emitPages });
  let emitted = 0;
  const sink = new Writable({
    objectMode: true,
    highWaterMark: pick([1, 16, 64]),
    write(/** @type {import('xbzrle').DecodedPage} */ page, _encoding, callback) {
      emitted++;
      if (page.kind === 'zero' && page.data.some((x) => x !== 0)) {
        callback(new SoakFailure(`emitted ZERO page ${page.block}@${page.offset} is not all zero`));
        return;
      }
      if (page.data.length !== ps) {
        callback(new SoakFailure(`emitted page ${page.block}@${page.offset} has ${page.data.length} bytes`));
        return;
      }
      if (chance(0.001)) setTimeout(callback, int(0, 5)); // now and then a slow consumer
      else callback();
    },
  });
  const sent = pipeline(enc, splitter(), client);
  const received = pipeline(socketIn, splitter(), dec, sink);
  sent.catch((err) => fail(new SoakFailure(`sender: ${err?.stack ?? err}`)));
  received.catch((err) => fail(new SoakFailure(`receiver: ${err?.stack ?? err}`)));

  // Stall watchdog: bytes must keep moving while the sender waits.
  let lastProgress = performance.now();
  let lastMark = -1;
  const watchdog = setInterval(() => {
    const mark = enc.stats.transferred + dec.stats.transferred + emitted;
    if (mark !== lastMark) {
      lastMark = mark;
      lastProgress = performance.now();
    } else if (performance.now() - lastProgress > STALL_MS) {
      fail(
        new SoakFailure(
          `stall: no progress for ${STALL_MS / 1000} s (encoder sent ${enc.stats.transferred} bytes, decoder parsed ${dec.stats.transferred}, ` +
            `${emitted} pages emitted; encoder writableLength ${enc.writableLength}, readableLength ${enc.readableLength}, decoder writableLength ${dec.writableLength})`,
        ),
      );
    }
  }, 1000);

  /** @param {boolean} fromTimer */
  const resize = (fromTimer) => {
    if (enc.destroyed || enc.writableFinished) return;
    enc.setCacheSize(cacheSizeChoice());
    totals.resizes++;
    if (fromTimer) totals.timerResizes++;
  };
  const timers = new Set();

  /**
   * @param {import('xbzrle').PageRecord} record
   * @param {(() => void) | undefined} onDone
   */
  const write = async (record, onDone) => {
    const ok = enc.write(record, onDone);
    if (!ok) await race(new Promise((resolve) => enc.once('drain', resolve)));
  };

  /**
   * A fresh copy of `src` of a random kind.
   * @param {Uint8Array} src
   * @param {number} pages
   * @returns {{ data: Uint8Array, done?: () => void }}
   */
  const copyOf = (src, pages) => {
    const r = next() % 100;
    if (r < 35) {
      totals.dataKinds.array++;
      return { data: src.slice() };
    }
    if (r < 55) {
      totals.dataKinds.buffer++;
      return { data: Buffer.from(src) };
    }
    if (r < 75) {
      totals.dataKinds.view++;
      const pad = int(1, 4095);
      const big = new Uint8Array(src.length + pad + int(0, 100));
      big.set(src, pad);
      return { data: big.subarray(pad, pad + src.length) };
    }
    if (r < 85) {
      totals.dataKinds.shared++;
      const view = new Uint8Array(new SharedArrayBuffer(src.length));
      view.set(src);
      return { data: view };
    }
    totals.dataKinds.allocPages++;
    const view = allocPages(pages, ps);
    view.set(src);
    return { data: view, done: () => freePages(view) };
  };

  /** Changes the memory the way a guest might, marking dirty pages. */
  /** @param {number} scale */
  const mutate = (scale) => {
    /**
     * @param {string} id
     * @param {number} from
     * @param {number} to
     */
    const touch = (id, from, to) => {
      const d = /** @type {Uint8Array} */ (dirty.get(id));
      for (let p = Math.floor(from / ps); p <= Math.floor((to - 1) / ps); p++) d[p] = 1;
    };
    const randomBlock = () => {
      let at = next() % totalBytes; // weighted by size
      for (const b of layout) {
        if (at < b.length) return b;
        at -= b.length;
      }
      return layout[0];
    };
    const ops = Math.max(1, Math.round(int(5, 400) * scale));
    for (let k = 0; k < ops; k++) {
      const b = randomBlock();
      const m = mem.get(b.id);
      const r = next() % 100;
      if (r < 45) {
        // sparse runs in one page or across a page boundary
        const len = chance(0.9) ? int(1, 64) : int(65, 600);
        const at = int(0, b.length - len);
        for (let i = at; i < at + len; i++) m[i] ^= (next() % 255) + 1;
        touch(b.id, at, at + len);
      } else if (r < 60) {
        // whole pages rewritten
        const n = int(1, 8);
        const p = int(0, b.length / ps - 1);
        const end = Math.min(b.length, (p + n) * ps);
        fillRandom(m.subarray(p * ps, end));
        touch(b.id, p * ps, end);
      } else if (r < 72) {
        // pages freed (zeroed)
        const n = int(1, 16);
        const p = int(0, b.length / ps - 1);
        const end = Math.min(b.length, (p + n) * ps);
        m.fill(0, p * ps, end);
        touch(b.id, p * ps, end);
      } else if (r < 80) {
        // a page copied from another page (maybe another block)
        const sb = randomBlock();
        const sp = int(0, sb.length / ps - 1);
        const p = int(0, b.length / ps - 1);
        m.set(mem.get(sb.id).subarray(sp * ps, (sp + 1) * ps), p * ps);
        touch(b.id, p * ps, (p + 1) * ps);
      } else if (r < 92) {
        // hot counters: every 64th byte of a region
        const len = Math.min(b.length, int(1, 64) * 1024);
        const at = int(0, b.length - len);
        for (let i = at; i < at + len; i += 64) m[i] = (m[i] + 1) & 0xff;
        touch(b.id, at, at + len);
      } else if (r < 97) {
        // a big region with dense changes (overflows)
        const len = Math.min(b.length, int(16, 512) * 1024);
        const at = int(0, b.length - len);
        const step = int(2, 40);
        for (let i = at; i < at + len; i += step) m[i] ^= (next() % 255) + 1;
        touch(b.id, at, at + len);
      } else {
        // a long changed run (> 16383 bytes on 16 KiB pages: no delta possible)
        const len = Math.min(b.length, int(8192, 40000));
        const at = int(0, b.length - len);
        for (let i = at; i < at + len; i++) m[i] ^= (next() % 255) + 1;
        touch(b.id, at, at + len);
      }
    }
  };

  /** Record ranges [{ id, from, pages }] covering the dirty pages (or everything). */
  /** @param {boolean} full */
  const plan = (full) => {
    /** @type {{ id: string, from: number, pages: number }[]} */
    const records = [];
    for (const b of layout) {
      const d = /** @type {Uint8Array} */ (dirty.get(b.id));
      const pages = d.length;
      for (let p = 0; p < pages; ) {
        if (!full && d[p] === 0) {
          p++;
          continue;
        }
        const r = next() % 100;
        const max = Math.min(pages - p, r < 40 ? 1 : r < 70 ? int(2, 16) : r < 95 ? int(17, 256) : int(257, 2048));
        let len = max;
        if (!full && chance(0.6)) {
          // mostly dirty pages: stop at the first clean one
          len = 1;
          while (len < max && d[p + len] === 1) len++;
        }
        d.fill(0, p, p + len);
        records.push({ id: b.id, from: p, pages: len });
        p += len;
      }
    }
    if (chance(0.3)) {
      for (let i = records.length - 1; i > 0; i--) {
        const j = next() % (i + 1);
        [records[i], records[j]] = [records[j], records[i]];
      }
    }
    return records;
  };

  /** Sends one round's records; `midRound` lets the guest dirty pages again meanwhile. */
  /**
   * @param {ReturnType<typeof plan>} records
   * @param {boolean} midRound
   */
  const sendRecords = async (records, midRound) => {
    const mutateAt = midRound ? int(0, records.length) : -1;
    const resizeAt = chance(0.25) ? int(0, records.length) : -1;
    if (chance(0.1)) {
      const t = setTimeout(() => {
        timers.delete(t);
        resize(true);
      }, int(0, 40));
      timers.add(t);
    }
    for (let i = 0; i < records.length; i++) {
      if (failure) return;
      if (i === mutateAt) mutate(0.2);
      if (i === resizeAt) resize(false);
      if (chance(0.002)) {
        enc.sync({ final: false });
        totals.extraSyncs++;
      }
      const { id, from, pages } = records[i];
      const src = /** @type {Uint8Array} */ (mem.get(id)).subarray(from * ps, (from + pages) * ps);
      const { data, done } = copyOf(src, pages);
      totals.records++;
      totals.pagesIn += pages;
      totals.bytesIn += pages * ps;
      await write({ block: id, offset: from * ps, data }, done);
    }
  };

  /** @param {boolean} final */
  const sync = (final) => race(/** @type {Promise<void>} */ (new Promise((resolve, reject) => enc.sync({ final }, (err) => (err ? reject(err) : resolve())))));

  /** Waits until the decoder parsed every byte the encoder produced. */
  const caughtUp = async () => {
    while (dec.stats.transferred < enc.stats.transferred) {
      if (failure) throw failure;
      await race(sleep(2));
    }
  };

  /** @param {string} what */
  const verify = (what) => {
    const buf = new Uint8Array(Math.max(MiB, ps));
    for (const b of layout) {
      const m = mem.get(b.id);
      for (let off = 0; off < b.length; off += buf.length) {
        const n = Math.min(buf.length, b.length - off);
        const got = buf.subarray(0, n);
        store.get(b.id, off, got);
        if (Buffer.compare(got, m.subarray(off, off + n)) !== 0) {
          const bad = [];
          for (let p = 0; p < n; p += ps) {
            if (Buffer.compare(got.subarray(p, p + ps), m.subarray(off + p, off + p + ps)) !== 0) bad.push(off + p);
          }
          throw new SoakFailure(
            `${what}: block ${b.id}: ${bad.length} page(s) differ from the source in [${off}, ${off + n}), first at offsets ${bad.slice(0, 5).join(', ')} (seed ${seed}, session ${index})`,
          );
        }
      }
      totals.pagesVerified += b.length / ps;
    }
    const blocks = dec.blocks ?? [];
    if (JSON.stringify(blocks) !== JSON.stringify(layout.map(({ id, length }) => ({ id, length })))) {
      throw new SoakFailure(`${what}: decoder blocks ${JSON.stringify(blocks)} differ from the declared ${JSON.stringify(layout)}`);
    }
    totals.checkpoints++;
  };

  const t0 = performance.now();
  let rounds = 0;
  let untilCheckpoint = int(3, 12);
  try {
    // Rounds until the session (or the run) is over.
    while (performance.now() < deadline && failure === null) {
      const checkpoint = --untilCheckpoint === 0;
      if (rounds > 0) mutate(chance(0.1) ? 5 : 1);
      if (chance(0.1)) resize(false); // between rounds
      const records = plan(chance(0.08));
      await sendRecords(records, !checkpoint && chance(0.5));
      await sync(false);
      rounds++;
      totals.rounds++;
      if (checkpoint) {
        untilCheckpoint = int(3, 12);
        await caughtUp();
        verify(`checkpoint after round ${rounds}`);
        const rss = process.memoryUsage.rss();
        rssLog.push(rss);
        if (performance.now() - lastLine < 10_000) continue; // a line every 10 s at most
        lastLine = performance.now();
        log(
          `soak: ${((performance.now() - startedAt) / 1000).toFixed(0).padStart(5)} s  session ${index} round ${String(rounds).padStart(4)}: verified; ` +
            `${totals.pagesIn} pages in, ${(totals.bytesIn / MiB).toFixed(0)} MiB in, ${((totals.bytesOut + enc.stats.transferred) / MiB).toFixed(0)} MiB on the wire, ` +
            `${totals.resizes} resizes (cache now ${(enc.cache.size / MiB).toFixed(2)} MiB), RSS ${(rss / MiB).toFixed(0)} MiB`,
        );
      }
    }
    // The last stage: dirty pages after sync({ final: true }), then end().
    if (failure === null) {
      mutate(1);
      await sendRecords(plan(false), false);
      await sync(true);
      mutate(0.3);
      await sendRecords(plan(false), false);
      rounds++;
      totals.rounds++;
      enc.end();
      await race(sent);
      await race(received);
      verify(`end of session ${index}`);
      const e = enc.stats.toJSON();
      const d = dec.stats.toJSON();
      for (const k of /** @type {const} */ (['PAGE', 'ZERO', 'XBZRLE', 'EOS', 'MEM_SIZE'])) {
        if (e.records[k] !== d.records[k]) throw new SoakFailure(`session ${index}: encoder sent ${e.records[k]} ${k} records, decoder read ${d.records[k]}`);
      }
      if (e.ram.transferred !== d.ram.transferred) throw new SoakFailure(`session ${index}: encoder sent ${e.ram.transferred} bytes, decoder read ${d.ram.transferred}`);
      const pageRecords = e.records.PAGE + e.records.ZERO + e.records.XBZRLE;
      if (emitPages && emitted !== pageRecords) throw new SoakFailure(`session ${index}: ${emitted} pages emitted for ${pageRecords} page records`);
      for (const k of /** @type {const} */ (['PAGE', 'ZERO', 'XBZRLE', 'EOS', 'MEM_SIZE'])) totals.wire[k] += e.records[k];
      totals.wire.skipped += e.ram.skipped;
      totals.wire.overflow += e['xbzrle-cache'].overflow;
      totals.bytesOut += e.ram.transferred;
      totals.emittedPages += emitted;
    }
    if (failure !== null) throw failure;
  } catch (err) {
    fail(err);
    throw failure;
  } finally {
    clearInterval(watchdog);
    for (const t of timers) clearTimeout(t);
    if (failure !== null) {
      enc.destroy();
      dec.destroy();
      client.destroy();
      socketIn.destroy();
    }
    store.dispose();
  }
  totals.sessions++;
  const e = enc.stats.toJSON();
  log(
    `soak: session ${index} done: ${rounds} rounds in ${((performance.now() - t0) / 1000).toFixed(1)} s, every page of ${layout.length} blocks ` +
      `(${(totalBytes / MiB).toFixed(1)} MiB) equals the source; records PAGE ${e.records.PAGE} (cache misses ${e['xbzrle-cache']['cache-miss']}, ` +
      `overflows ${e['xbzrle-cache'].overflow}), XBZRLE ${e.records.XBZRLE}, ZERO ${e.records.ZERO}, unchanged ${e.ram.skipped}`,
  );
}

// ---- the run ------------------------------------------------------------------------

const startedAt = performance.now();
let lastLine = -Infinity;
const endAt = startedAt + minutes * 60_000;
log(`soak: seed ${seed}, ${minutes} minute(s), sessions of up to ${sessionMinutes} minute(s)`);
let error = null;
try {
  for (let i = 1; ; i++) {
    const now = performance.now();
    await session(i, Math.min(endAt, now + sessionMinutes * 60_000));
    if (performance.now() >= endAt) break;
  }
} catch (err) {
  error = err;
}
clearInterval(sampler);
const seconds = (performance.now() - startedAt) / 1000;
const finalRss = process.memoryUsage.rss();
if (finalRss > peakRss) peakRss = finalRss;
const vmHwm = hwm();
const summary = {
  ok: error === null,
  error: error === null ? null : String(error instanceof SoakFailure ? error.message : (/** @type {{ stack?: string } | null} */ (error)?.stack ?? error)),
  ...totals,
  seconds: Math.round(seconds * 10) / 10,
  baselineRssMiB: Math.round((baselineRss / MiB) * 10) / 10,
  peakRssMiB: Math.round((Math.max(peakRss, vmHwm ?? 0) / MiB) * 10) / 10,
  peakRssSampledMiB: Math.round((peakRss / MiB) * 10) / 10,
  vmHwmMiB: vmHwm === null ? null : Math.round((vmHwm / MiB) * 10) / 10,
  checkpointRssMiB: rssLog.length === 0 ? [] : [rssLog[0], rssLog[Math.floor(rssLog.length / 2)], rssLog[rssLog.length - 1]].map((x) => Math.round(x / MiB)),
};
const w = totals.wire;
process.stdout.write(
  `soak: ${summary.ok ? 'OK' : 'FAILED'}: seed ${seed}, ${seconds.toFixed(1)} s, ${totals.sessions} session(s), ${totals.rounds} rounds, ${totals.checkpoints} verified checkpoints (${totals.pagesVerified} pages compared)\n` +
    `  in: ${totals.records} records, ${totals.pagesIn} pages, ${(totals.bytesIn / MiB).toFixed(1)} MiB; on the wire: ${(totals.bytesOut / MiB).toFixed(1)} MiB ` +
    `(PAGE ${w.PAGE}, ZERO ${w.ZERO}, XBZRLE ${w.XBZRLE}, EOS ${w.EOS}; unchanged ${w.skipped}, overflow ${w.overflow})\n` +
    `  ${totals.resizes} cache resizes (${totals.timerResizes} from timers), ${totals.extraSyncs} extra syncs, page sizes ${JSON.stringify(totals.pageSizes)}, data kinds ${JSON.stringify(totals.dataKinds)}\n` +
    `  RSS: baseline ${summary.baselineRssMiB} MiB, peak ${summary.peakRssMiB} MiB (sampled ${summary.peakRssSampledMiB}, VmHWM ${summary.vmHwmMiB ?? 'n/a'}); at checkpoints (first, middle, last) ${summary.checkpointRssMiB.join(', ')} MiB\n` +
    (error === null ? '' : `  ERROR: ${summary.error}\n`),
);
if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exitCode = error === null ? 0 : 1;
