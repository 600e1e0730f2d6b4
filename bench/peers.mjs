// Peer compressors for the XBZRLE benchmark: per page, XOR the old and new
// page, then compress the XOR with one call (lz4-napi, snappy, zlib
// deflateRaw level 1). This is what a user could do instead of XBZRLE.
//
// lz4-napi and snappy are native (napi-rs) packages. They are not in the
// root package.json: their lockfile entries name many platform packages, and
// a registry mirror lacking one of them breaks `npm ci`. `npm run bench:peers`
// installs them under bench/.build/peers/ (gitignored); they are loaded from
// there with a dynamic import and reported as skipped when absent. zlib is
// part of Node and always available.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import Benchmark from 'benchmark';
import { PAGE_SIZE } from './scenarios.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
/** Where `npm run bench:peers` installs the optional peers. */
export const PEERS_DIR = join(HERE, '.build', 'peers');
export const PEER_NAMES = ['XOR+lz4', 'XOR+snappy', 'XOR+deflateRaw-1'];

/**
 * A peer compressor: `compress` handles one 4 KiB page.
 * @typedef {object} Peer
 * @property {(page: Buffer) => Uint8Array} compress
 * @property {(bytes: Uint8Array) => Uint8Array} decompress
 * @property {string} version
 */

/** @typedef {Record<string, Peer | null>} Peers */

/**
 * The two functions used of lz4-napi and snappy (both napi-rs packages).
 * @typedef {{ compressSync(b: Buffer): Buffer, uncompressSync(b: Uint8Array): Buffer }} NativeCodec
 */

/**
 * Imports a package installed under PEERS_DIR, or returns null.
 * @param {string} name
 * @returns {Promise<NativeCodec | null>}
 */
async function importPeer(name) {
  const anchor = join(PEERS_DIR, 'package.json');
  if (!existsSync(join(PEERS_DIR, 'node_modules', name))) return null;
  try {
    const resolved = createRequire(anchor).resolve(name);
    const mod = await import(pathToFileURL(resolved).href);
    return mod.default ?? mod;
  } catch (err) {
    process.stdout.write(`peer ${name}: failed to load (${String(err instanceof Error ? err.message : err).split('\n')[0]})\n`);
    return null;
  }
}

/**
 * The available peers: name → { compress(page) → Uint8Array, decompress(bytes) → Uint8Array },
 * null for those not installed. Each compress call handles one 4 KiB page.
 * @returns {Promise<Peers>}
 */
export async function loadPeers() {
  /** @type {Peers} */
  const peers = {};
  const lz4 = await importPeer('lz4-napi');
  peers['XOR+lz4'] = lz4 ? { compress: (b) => lz4.compressSync(b), decompress: (b) => lz4.uncompressSync(b), version: version('lz4-napi') } : null;
  const snappy = await importPeer('snappy');
  peers['XOR+snappy'] = snappy
    ? { compress: (b) => snappy.compressSync(b), decompress: (b) => snappy.uncompressSync(b), version: version('snappy') }
    : null;
  const level1 = { level: 1 };
  peers['XOR+deflateRaw-1'] = {
    compress: (b) => zlib.deflateRawSync(b, level1),
    decompress: (b) => zlib.inflateRawSync(b),
    version: `node:zlib ${process.versions.zlib}`,
  };
  return peers;
}

/** @param {string} name */
function version(name) {
  try {
    return createRequire(join(PEERS_DIR, 'package.json'))(`${name}/package.json`).version;
  } catch {
    return '?';
  }
}

/**
 * Measures every available peer on (oldBuf, newBuf): MB/s of page data
 * (XOR + compress, one call per page) and compressed size as % of the input.
 * Every 16th page is decompressed and checked (untimed).
 * @param {Peers} peers
 * @param {Uint8Array} oldBuf
 * @param {Uint8Array} newBuf
 * @param {{ quick: boolean, maxTime: number }} timing
 * @returns {{ results: Record<string, { mbps: number, pct: number, bytes: number, version: string }>, failures: string[] }}
 */
export function peerBench(peers, oldBuf, newBuf, { quick, maxTime }) {
  const pages = oldBuf.length / PAGE_SIZE;
  const words = PAGE_SIZE / 4;
  // Word views of the whole buffers (both are 4-byte aligned: offset 0 of their ArrayBuffers).
  const oldW = new Int32Array(oldBuf.buffer, oldBuf.byteOffset, oldBuf.length / 4);
  const newW = new Int32Array(newBuf.buffer, newBuf.byteOffset, newBuf.length / 4);
  const scratch = Buffer.alloc(PAGE_SIZE);
  const scratchW = new Int32Array(scratch.buffer, scratch.byteOffset, words);
  /** @param {number} i */
  const xorPage = (i) => {
    const base = i * words;
    for (let k = 0; k < words; k++) scratchW[k] = /** @type {number} */ (oldW[base + k]) ^ /** @type {number} */ (newW[base + k]);
  };

  /** @type {ReturnType<typeof peerBench>['results']} */
  const results = {};
  /** @type {string[]} */
  const failures = [];
  for (const name of PEER_NAMES) {
    const peer = peers[name];
    if (!peer) continue;
    // Untimed: sizes and a sampled round trip.
    let bytes = 0;
    for (let i = 0; i < pages; i++) {
      xorPage(i);
      const c = peer.compress(scratch);
      bytes += c.length;
      if (i % 16 === 0) {
        const back = peer.decompress(c);
        if (Buffer.compare(Buffer.from(back.buffer, back.byteOffset, back.length), scratch) !== 0) {
          failures.push(`${name}: page ${i} does not decompress to its XOR`);
          break;
        }
      }
    }
    let sink = 0;
    const bench = new Benchmark(
      name,
      () => {
        let acc = 0;
        for (let i = 0; i < pages; i++) {
          xorPage(i);
          acc += peer.compress(scratch).length;
        }
        sink ^= acc;
      },
      { maxTime, minSamples: quick ? 1 : 3, initCount: 1 },
    );
    bench.run({ async: false });
    if (bench.error) throw bench.error;
    if (sink === 0.5) process.stdout.write(''); // keep `sink` observable
    results[name] = { mbps: (bench.hz * oldBuf.length) / 1e6, pct: (100 * bytes) / oldBuf.length, bytes, version: peer.version };
  }
  return { results, failures };
}
