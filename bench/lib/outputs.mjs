// The encoder's output over a whole buffer in baseline.c's dump format (per
// page: int32 LE result, then the delta bytes when > 0), its summary as the
// paths compare it (the C program prints the same fields), and the report of
// where two dumps differ. Shared by the bench's sanity check, the TS-path
// child and test/bench-equivalence.test.ts.
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PAGE_SIZE } from '../scenarios.mjs';

/**
 * @typedef {object} Summary
 * @property {string} hash FNV-1a 64 of the dump, 16 hex digits
 * @property {number} encodedBytes total delta bytes
 * @property {number} unchanged pages with result 0
 * @property {number} overflow pages with a negative result
 * @property {number} deltaPages pages with a delta
 */

/** @typedef {Summary & { dump: Buffer }} EncodePass */

/** @typedef {(prev: Uint8Array, cur: Uint8Array, out: Uint8Array) => number} Encode */

/**
 * FNV-1a 64 over a byte array, on two 32-bit halves (hi, lo). The multiply
 * by 2^40 + 0x1b3 is split as lo*0x1b3 (exact in a double), hi*0x1b3 and
 * lo<<40 (which lands in the high word as lo<<8).
 * @param {Uint8Array} bytes
 * @returns {string} 16 hex digits
 */
export function fnv1a64(bytes) {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let k = 0; k < bytes.length; k++) {
    lo = (lo ^ /** @type {number} */ (bytes[k])) >>> 0;
    const t = lo * 0x1b3;
    hi = (Math.imul(hi, 0x1b3) + Math.floor(t / 4294967296) + ((lo << 8) >>> 0)) >>> 0;
    lo = t >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/**
 * Page views of a buffer (prepared up front, so measured loops allocate nothing).
 * @param {Uint8Array} buf
 * @returns {Uint8Array[]}
 */
export function pageViews(buf) {
  const pages = buf.length / PAGE_SIZE;
  const views = new Array(pages);
  for (let i = 0; i < pages; i++) views[i] = buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
  return views;
}

/**
 * Untimed pass: encodes every page with `encode`, collecting the output in
 * the dump format. `outFor(i)` gives the output buffer of page i (dlen = 4096).
 * @param {Encode} encode
 * @param {Uint8Array[]} oldViews
 * @param {Uint8Array[]} newViews
 * @param {(i: number) => Uint8Array} outFor
 * @returns {EncodePass}
 */
export function encodePass(encode, oldViews, newViews, outFor) {
  /** @type {Buffer[]} */
  const parts = [];
  let encodedBytes = 0;
  let unchanged = 0;
  let overflow = 0;
  let deltaPages = 0;
  for (let i = 0; i < oldViews.length; i++) {
    const out = outFor(i);
    const r = encode(/** @type {Uint8Array} */ (oldViews[i]), /** @type {Uint8Array} */ (newViews[i]), out);
    const le = Buffer.alloc(4);
    le.writeInt32LE(r, 0);
    parts.push(le);
    if (r > 0) {
      parts.push(Buffer.from(out.subarray(0, r)));
      encodedBytes += r;
      deltaPages++;
    } else if (r === 0) unchanged++;
    else overflow++;
  }
  const dump = Buffer.concat(parts);
  return { dump, hash: fnv1a64(dump), encodedBytes, unchanged, overflow, deltaPages };
}

/**
 * The summary fields of a pass (without its dump).
 * @param {Summary} p
 * @returns {Summary}
 */
export const summary = (p) => ({ hash: p.hash, encodedBytes: p.encodedBytes, unchanged: p.unchanged, overflow: p.overflow, deltaPages: p.deltaPages });

/**
 * @param {Summary} a
 * @param {Summary} b
 */
export const sameOutput = (a, b) =>
  a.hash === b.hash && a.encodedBytes === b.encodedBytes && a.unchanged === b.unchanged && a.overflow === b.overflow && a.deltaPages === b.deltaPages;

/** @param {Summary} p */
export const describeOutput = (p) => `hash ${p.hash} size ${p.encodedBytes} unchanged ${p.unchanged} overflow ${p.overflow}`;

/**
 * The per-page results of a dump: the encoder's result and the delta bytes (empty unless > 0).
 * @param {Buffer} dump
 * @returns {Generator<{ result: number, delta: Buffer }>}
 */
export function* dumpPages(dump) {
  for (let pos = 0; pos < dump.length; ) {
    const result = dump.readInt32LE(pos);
    const delta = result > 0 ? dump.subarray(pos + 4, pos + 4 + result) : Buffer.alloc(0);
    pos += 4 + Math.max(result, 0);
    yield { result, delta };
  }
}

/**
 * The first page where two dumps differ, or null when every page agrees.
 * @param {Buffer} dumpA
 * @param {Buffer} dumpB
 * @returns {{ page: number, a: { result: number, delta: Buffer }, b: { result: number, delta: Buffer } } | null}
 */
export function firstDifference(dumpA, dumpB) {
  const pagesB = dumpPages(dumpB);
  let page = 0;
  for (const a of dumpPages(dumpA)) {
    const next = pagesB.next();
    if (next.done) return null;
    const b = next.value;
    if (a.result !== b.result || Buffer.compare(a.delta, b.delta) !== 0) return { page, a, b };
    page++;
  }
  return null;
}

/**
 * Locates the first page where two dumps differ, saves a reproducer under
 * `dir` and returns the lines that describe it.
 * @param {{ scenario: string, oldBuf: Uint8Array, newBuf: Uint8Array, dir: string, root: string }} where
 * @param {string} labelA
 * @param {Buffer} dumpA
 * @param {string} labelB
 * @param {Buffer} dumpB
 * @returns {string[]}
 */
export function reportFirstDifference({ scenario, oldBuf, newBuf, dir, root }, labelA, dumpA, labelB, dumpB) {
  const d = firstDifference(dumpA, dumpB);
  if (d === null) return ['  per-page outputs agree; the difference is in the summary computation'];
  const at = d.page * PAGE_SIZE;
  const base = join(dir, `mismatch-${scenario}-page${d.page}`);
  writeFileSync(`${base}.old.bin`, oldBuf.subarray(at, at + PAGE_SIZE));
  writeFileSync(`${base}.new.bin`, newBuf.subarray(at, at + PAGE_SIZE));
  writeFileSync(`${base}.${labelA}.bin`, d.a.delta);
  writeFileSync(`${base}.${labelB}.bin`, d.b.delta);
  const rel = relative(root, base);
  return [
    `  first difference at page ${d.page} (buffer offset ${at}): ${labelA} returned ${d.a.result}, ${labelB} returned ${d.b.result}`,
    `  reproducer: ${relative(process.cwd(), base)}.{old,new}.bin (the pages), .${labelA}.bin / .${labelB}.bin (the deltas)`,
    '  reproduce (from the package root, after npm run build; XBZRLE_WASM=0 for the TS path):',
    `  node --input-type=module -e "import { encodeXbzrle } from './dist/index.js'; import { readFileSync as r } from 'node:fs';` +
      ` const out = new Uint8Array(${PAGE_SIZE}); const n = encodeXbzrle(r('${rel}.old.bin'), r('${rel}.new.bin'), out);` +
      ` console.log(n, Buffer.from(out.subarray(0, Math.max(n, 0))).toString('hex'))"`,
  ];
}
