#!/usr/bin/env node
// Example: keep a series of memory dumps as a base image plus deltas.
//
//   base.img        snapshot 0, written whole
//   delta-001.xd    snapshot 1 against snapshot 0
//   delta-002.xd    snapshot 2 against snapshot 1   … and so on
//
// Each delta is an ordinary RAM record stream (MEM_SIZE, page records, EOS),
// made by comparing two snapshots page by page with the public codec:
// unchanged pages are left out, pages that became all zero go as ZERO, the
// others as an XBZRLE delta against the previous snapshot's page (encodeXbzrle),
// or as PAGE when the delta would not fit in a page. RecordWriter frames the
// records and an fs write stream stores them. This is what `xbzrle diff` does,
// so `xbzrle patch base.img delta-001.xd -o snap1.img` applies these files too.
//
// Why not one XbzrleEncodeStream fed every snapshot with sync() in between?
// Its XBZRLE records are deltas against the encoder's page *cache*, not
// against the previous snapshot: a page that missed the cache goes as PAGE
// even when it did not change, and a delta is only right if the receiver has
// applied everything the encoder sent before. Its rounds are therefore only
// valid replayed in order from the first byte, never one file on its own. A
// page-by-page diff makes delta k depend on snapshot k−1 and nothing else.
//
// Restoring point k = copy base.img, then apply delta 1..k in order, each with
// an XbzrleDecodeStream writing into the copy through a FilePageStore (an
// XBZRLE record is applied to the page already in the file). Every restored
// point is checked against the SHA-256 of the original snapshot.
//
// Run:   npm run build && node examples/snapshot-chain.mjs [--size MiB] [--snapshots N] [--restore K] [--keep DIR]
//        --restore K restores only point K (default: every point 0..N);
//        --keep DIR writes the chain (and manifest.json with each snapshot's SHA-256) into DIR and keeps it.
// Exit:  0 when every restored point equals its snapshot, 1 otherwise.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { exampleOptions } from './args.mjs';
import { FilePageStore, RecordWriter, XbzrleDecodeStream, encodeXbzrle, isZeroPage } from 'xbzrle';

const { values, usageError } = exampleOptions('usage: node examples/snapshot-chain.mjs [--size MiB] [--snapshots N] [--restore K] [--keep DIR]', {
  size: { type: 'string', default: '8' },
  snapshots: { type: 'string', default: '5' },
  restore: { type: 'string' },
  keep: { type: 'string' },
});
const PAGE = 4096;
const SIZE = Number(values.size) * 1048576;
const N = Number(values.snapshots);
if (!(SIZE > 0 && SIZE % PAGE === 0) || !Number.isInteger(N) || N < 1) usageError('--size must be a positive number of MiB (whole pages), --snapshots ≥ 1');
const points = values.restore === undefined ? [...Array(N + 1).keys()] : [Number(values.restore)];
if (!points.every((k) => Number.isInteger(k) && k >= 0 && k <= N)) usageError(`--restore must be 0..${N}`);
const BLOCK = 'ram'; // the block name `xbzrle diff` uses by default

// ---- a memory image that changes between snapshots ---------------------------
let seed = 0xc4a1; // deterministic pseudo-random numbers (mulberry32)
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
function firstImage() {
  const img = new Uint8Array(SIZE); // a third zero, the rest data
  for (let i = Math.floor(SIZE / 3); i < SIZE; i++) img[i] = (rand() * 256) | 0;
  return img;
}
/** @param {Uint8Array} img */
function changeSome(img) {
  for (let off = SIZE / 2; off < SIZE; off += 8192) img[off] ^= 1 + ((rand() * 255) | 0); // counters
  for (let k = 0; k < 100; k++) { // small patches
    const at = Math.floor(rand() * (SIZE - 32));
    for (let i = 0; i < 32; i++) img[at + i] = (rand() * 256) | 0;
  }
  for (let k = 0; k < 20; k++) { // pages freed, or rewritten completely
    const page = Math.floor(rand() * (SIZE / PAGE)) * PAGE;
    if (k % 2) img.fill(0, page, page + PAGE);
    else for (let i = page; i < page + PAGE; i++) img[i] = (rand() * 256) | 0;
  }
}

// ---- a delta: NEW against OLD, page by page, as a RAM record stream ----------
/**
 * Yields the bytes of the delta; counts its records in `counts`.
 * @param {Uint8Array} oldImg
 * @param {Uint8Array} newImg
 * @param {{ unchanged: number, ZERO: number, XBZRLE: number, PAGE: number }} counts
 */
async function* diff(oldImg, newImg, counts) {
  /** @type {Uint8Array[]} */
  const chunks = [];
  const writer = new RecordWriter({ pageSize: PAGE }, (chunk) => chunks.push(chunk));
  const out = new Uint8Array(PAGE); // dlen = one page, as QEMU
  writer.memSize([{ id: BLOCK, length: newImg.length }]); // the size first: the receiver checks offsets against it
  for (let off = 0; off < newImg.length; off += PAGE) {
    const oldPage = oldImg.subarray(off, off + PAGE);
    const newPage = newImg.subarray(off, off + PAGE);
    const n = encodeXbzrle(oldPage, newPage, out); // > 0 delta length, 0 unchanged, -1 overflow
    if (n === 0) {
      counts.unchanged++; // nothing to send
    } else if (isZeroPage(newPage)) {
      writer.zero(BLOCK, off); // a page that became all zero: 9 bytes
      counts.ZERO++;
    } else if (n > 0) {
      writer.xbzrle(BLOCK, off, out, 0, n); // the changed runs only
      counts.XBZRLE++;
    } else {
      writer.page(BLOCK, off, newPage, 0); // the delta would not fit: the whole page
      counts.PAGE++;
    }
    if (chunks.length > 0) yield* chunks.splice(0); // chunks are fresh views: safe to hand out
  }
  writer.eos();
  writer.flush();
  yield* chunks.splice(0);
}

/**
 * Applies one delta file to the image file `target`, in place.
 * @param {string} deltaPath
 * @param {string} target
 */
async function applyDelta(deltaPath, target) {
  const store = new FilePageStore({ path: () => target, fsync: false }); // every block of the delta -> target
  const dec = new XbzrleDecodeStream({ store, emitPages: false });
  // The decoder's flush calls store.finish(): pages written and the file closed.
  await pipeline(createReadStream(deltaPath), dec, new Writable({ objectMode: true, write: (_p, _e, cb) => cb() }));
  return dec.stats;
}

/** @param {Uint8Array} bytes */
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
/** @param {string} path */
async function sha256File(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return h.digest('hex');
}

const dir = values.keep ?? (await mkdtemp(join(tmpdir(), 'xbzrle-snap-')));
if (values.keep !== undefined) await mkdir(dir, { recursive: true });
/** @param {number} k */
const deltaName = (k) => `delta-${String(k).padStart(3, '0')}.xd`;
let failed = false;
try {
  // ---- take the snapshots ----------------------------------------------------
  console.log(`snapshot-chain: ${SIZE / 1048576} MiB image, base + ${N} deltas in ${dir}`);
  let cur = firstImage();
  const hashes = [sha256(cur)];
  await pipeline(
    (function* () {
      for (let off = 0; off < SIZE; off += 1 << 20) yield cur.subarray(off, off + (1 << 20));
    })(),
    createWriteStream(join(dir, 'base.img')),
  );
  console.log(`  base.img       ${(SIZE / 1024).toFixed(0).padStart(8)} KiB  snapshot 0`);
  let chainBytes = SIZE;
  for (let k = 1; k <= N; k++) {
    const prev = cur.slice();
    changeSome(cur);
    hashes.push(sha256(cur));
    const counts = { XBZRLE: 0, PAGE: 0, ZERO: 0, unchanged: 0 };
    await pipeline(diff(prev, cur, counts), createWriteStream(join(dir, deltaName(k))));
    const { size } = await stat(join(dir, deltaName(k)));
    chainBytes += size;
    console.log(
      `  ${deltaName(k)}  ${(size / 1024).toFixed(1).padStart(8)} KiB  snapshot ${k}: XBZRLE ${counts.XBZRLE}, PAGE ${counts.PAGE}, ZERO ${counts.ZERO}, unchanged ${counts.unchanged}`,
    );
  }
  console.log(`  chain: ${(chainBytes / 1048576).toFixed(2)} MiB for ${N + 1} snapshots of ${SIZE / 1048576} MiB (${((100 * chainBytes) / (SIZE * (N + 1))).toFixed(1)}%)`);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ block: BLOCK, size: SIZE, base: 'base.img', deltas: hashes.slice(1).map((_, i) => deltaName(i + 1)), sha256: hashes }, null, 2) + '\n');

  // ---- restore points --------------------------------------------------------
  for (const k of points) {
    const target = join(dir, `restored-${k}.img`);
    await copyFile(join(dir, 'base.img'), target);
    let pages = 0;
    for (let j = 1; j <= k; j++) {
      const r = (await applyDelta(join(dir, deltaName(j)), target)).records; // in order: delta j needs point j−1
      pages += r.XBZRLE + r.PAGE + r.ZERO;
    }
    const ok = (await sha256File(target)) === hashes[k];
    if (!ok) failed = true;
    console.log(`  restore point ${k}: base + ${k} deltas (${pages} pages applied) -> sha256 ${hashes[k].slice(0, 16)}… ${ok ? 'OK' : 'MISMATCH'}`);
    if (values.keep === undefined) await rm(target);
  }
  if (failed) console.error('FAILED: a restored point differs from its snapshot');
  else console.log(`verified: ${points.length} restore point(s) equal the original snapshots: OK`);
} finally {
  if (values.keep === undefined) await rm(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
