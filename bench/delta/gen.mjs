// Deterministic memory-like image pairs for bench/delta.mjs.
// OLD: zero pages, text-like, pointer-like and random pages in runs (as a guest's
// memory has them). NEW: OLD with one workload's changes applied.
import { open } from 'node:fs/promises';

const PS = 4096;
const WORDS = ['kernel', 'memory', 'page', 'alloc', 'struct', 'return', 'while', 'the', 'of', 'and', 'process', 'buffer', 'inode', 'dentry', 'task', 'mutex', 'spin_lock', 'GFP_KERNEL', 'printk', '{', '}', ';', '\n', '\t', '0x', 'NULL'];

/**
 * A xorshift32 generator of 32-bit unsigned integers.
 * @param {number} seed
 * @returns {() => number}
 */
export function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/**
 * @param {Uint8Array} buf
 * @param {number} o
 * @param {() => number} r
 */
function textPage(buf, o, r) {
  let i = 0;
  while (i < PS) {
    const w = WORDS[r() % WORDS.length];
    for (let j = 0; j < w.length && i < PS; j++) buf[o + i++] = w.charCodeAt(j);
    if (i < PS) buf[o + i++] = 32;
  }
}

/**
 * @param {Uint8Array} buf
 * @param {number} o
 * @param {() => number} r
 */
function pointerPage(buf, o, r) {
  const dv = new DataView(buf.buffer, buf.byteOffset);
  buf.fill(0, o, o + PS);
  const base = 0xffff888000000000n;
  for (let i = 0; i < PS; i += 8) {
    const k = r() & 7;
    if (k < 4) dv.setBigUint64(o + i, base + BigInt((r() & 0xfffff) * 64), true);
    else if (k < 6) dv.setUint32(o + i, r() & 0xffff, true);
  }
}

/**
 * @param {Uint8Array} buf
 * @param {number} o
 * @param {() => number} r
 */
function randomPage(buf, o, r) {
  const w = new Uint32Array(buf.buffer, buf.byteOffset + o, PS / 4);
  for (let i = 0; i < w.length; i++) w[i] = r();
}

/**
 * Kind of OLD page p: runs of 1..64 pages of one kind (0 zero 35%, 1 text 25%, 2 pointers 30%, 3 random 10%).
 * @param {number} pages
 * @param {number} seed
 * @returns {Uint8Array}
 */
function kinds(pages, seed) {
  const r = rng(seed);
  const k = new Uint8Array(pages);
  let p = 0;
  while (p < pages) {
    const x = r() % 100;
    const kind = x < 35 ? 0 : x < 60 ? 1 : x < 90 ? 2 : 3;
    const run = 1 + (r() % 64);
    k.fill(kind, p, Math.min(pages, p + run));
    p += run;
  }
  return k;
}

/**
 * @param {Uint8Array} buf
 * @param {number} o
 * @param {number} kind  as {@link kinds} gives it
 * @param {() => number} r
 */
function fill(buf, o, kind, r) {
  if (kind === 0) buf.fill(0, o, o + PS);
  else if (kind === 1) textPage(buf, o, r);
  else if (kind === 2) pointerPage(buf, o, r);
  else randomPage(buf, o, r);
}

/**
 * A workload: the fraction of pages each kind of change is applied to.
 * @typedef {object} Workload
 * @property {number} [small]       small edits (a few bytes)
 * @property {number} [rewrite]     rewritten with random bytes
 * @property {number} [zeroed]      zeroed
 * @property {number} [fillText]    filled with new text
 * @property {number} [fillPtr]     filled with new pointers
 * @property {number} [fillRandom]  filled with new random bytes
 * @property {number} [moved]       replaced by another page of OLD
 * @property {number} [dup]         duplicates of a few new pages
 */

/** @type {Record<string, Workload>} */
export const WORKLOADS = {
  // a few % small edits, some rewritten, zeroed, newly filled
  edits: { small: 0.03, rewrite: 0.005, zeroed: 0.005, fillText: 0.01 },
  // pages moved around and duplicated (page cache churn, compaction)
  moved: { small: 0.01, moved: 0.04, dup: 0.01 },
  // new compressible content (text and pointers) in 5% of pages
  'new-compressible': { small: 0.01, fillText: 0.03, fillPtr: 0.02 },
  // new random content (crypto buffers, compressed data) in 3% of pages
  'new-random': { small: 0.01, fillRandom: 0.03 },
  // sparse small edits: 0.5% of pages, a few bytes each
  sparse: { small: 0.005 },
};

/**
 * Writes OLD and NEW of `size` bytes for `workload` to the two paths.
 * @param {string} oldPath
 * @param {string} newPath
 * @param {number} size
 * @param {string} workload  a key of {@link WORKLOADS}
 * @param {number} [seed]
 */
export async function generate(oldPath, newPath, size, workload, seed = 1) {
  const w = WORKLOADS[workload];
  const pages = size / PS;
  const k = kinds(pages, seed);
  // The change plan per page: 0 none, 1 small edit, 2 rewrite random, 3 zeroed, 4 text, 5 pointers, 6 random fill, 7 moved (from src), 8 dup of an earlier changed page
  const plan = new Uint8Array(pages);
  const src = new Int32Array(pages);
  const r = rng(seed * 7919);
  /** @param {number | undefined} frac @param {number} code */
  const mark = (frac, code) => {
    const n = Math.floor(pages * (frac ?? 0));
    for (let i = 0; i < n; i++) {
      const p = r() % pages;
      plan[p] = code;
      if (code === 7) src[p] = r() % pages;
    }
  };
  mark(w.small, 1);
  mark(w.rewrite, 2);
  mark(w.zeroed, 3);
  mark(w.fillText, 4);
  mark(w.fillPtr, 5);
  mark(w.fillRandom, 6);
  mark(w.moved, 7);
  // dup: groups of pages with the same new content
  const nd = Math.floor(pages * (w.dup ?? 0));
  for (let i = 0; i < nd; i++) {
    const p = r() % pages;
    plan[p] = 8;
    src[p] = i % Math.max(1, Math.floor(nd / 4));
  }
  const CH = 1024; // pages per chunk (4 MiB)
  const fo = await open(oldPath, 'w');
  const fn = await open(newPath, 'w');
  const ob = new Uint8Array(CH * PS);
  const nb = new Uint8Array(CH * PS);
  const page = new Uint8Array(PS);
  /** @type {Map<number, Uint8Array>} */
  const dupContent = new Map();
  try {
    for (let c = 0; c < pages; c += CH) {
      const n = Math.min(CH, pages - c);
      for (let i = 0; i < n; i++) fill(ob, i * PS, k[c + i], rng(seed * 1000003 + c + i));
      nb.set(ob.subarray(0, n * PS));
      for (let i = 0; i < n; i++) {
        const p = c + i;
        const o = i * PS;
        const pr = rng(seed * 31 + p * 17 + 5);
        switch (plan[p]) {
          case 1: {
            const edits = 1 + (pr() % 4);
            for (let e = 0; e < edits; e++) {
              const at = o + (pr() % (PS - 16));
              const len = 1 + (pr() % 12);
              for (let b = 0; b < len; b++) nb[at + b] = pr() & 0xff;
            }
            break;
          }
          case 2:
          case 6:
            randomPage(nb, o, pr);
            break;
          case 3:
            nb.fill(0, o, o + PS);
            break;
          case 4:
            textPage(nb, o, pr);
            break;
          case 5:
            pointerPage(nb, o, pr);
            break;
          case 7: {
            // the content of OLD's page src[p], regenerated from its seed
            const s = src[p];
            fill(page, 0, k[s], rng(seed * 1000003 + s));
            nb.set(page, o);
            break;
          }
          case 8: {
            let d = dupContent.get(src[p]);
            if (d === undefined) {
              d = new Uint8Array(PS);
              fill(d, 0, 1 + (src[p] % 3), rng(seed * 77 + src[p]));
              dupContent.set(src[p], d);
            }
            nb.set(d, o);
            break;
          }
        }
      }
      await fo.write(ob, 0, n * PS);
      await fn.write(nb, 0, n * PS);
    }
  } finally {
    await fo.close();
    await fn.close();
  }
}
