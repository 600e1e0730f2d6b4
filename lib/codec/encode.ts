import { argRangeError, argTypeError, XbzrleError } from '../errors.js';
import { ULEB_MAX, ulebWrite } from './uleb128.js';
import { DeltaViews } from './delta-views.js';
import { wordsOf } from './words.js';
import { getEngine, kernelAddress, type WasmEngine } from './wasm/engine.js';

const NO_WORDS = new Int32Array(0);
/** Below this many bytes a run is copied byte by byte instead of with `set`. */
const COPY_LOOP_MAX = 32;

/**
 * The encoder kernel over (array, offset) pairs, so hot paths can encode
 * pages that sit inside larger buffers (the cache arena, a record of many
 * pages) without creating a view per page.
 *
 * Reproduces QEMU's scalar `xbzrle_encode_buffer` exactly (spec:
 * xbzrle-codec.md §3): byte-maximal alternating runs, the first zero run may
 * be 0, the trailing zero run is not written, and the room checks at the same
 * three points, which give -1 when `dlen < 2`, when the delta is longer than
 * `dlen`, and when it is longer than `dlen - 2` and the page ends unchanged.
 * Never writes at or past `out[outOff + dlen]`.
 *
 * @returns the delta length, 0 when the ranges are equal, -1 on overflow
 * @throws XbzrleError `ERR_XBZRLE_UNENCODABLE` when a run longer than 16383
 *   bytes would have to be written (QEMU aborts there)
 */
export function encodeRange(
  prev: Uint8Array,
  prevOff: number,
  cur: Uint8Array,
  curOff: number,
  slen: number,
  out: Uint8Array,
  outOff: number,
  dlen: number,
): number {
  if (slen === 0) return 0; // QEMU's loop never runs: no room check either
  if (dlen < 2) return -1;
  const pa = prev.byteOffset + prevOff;
  const ca = cur.byteOffset + curOff;
  // Word scanning needs both ranges at the same position in the word grid.
  const useWords = slen >= 16 && ((pa ^ ca) & 3) === 0;
  const pw = useWords ? wordsOf(prev) : NO_WORDS;
  const cw = useWords ? wordsOf(cur) : NO_WORDS;
  const wordEnd = Math.floor((ca + slen) / 4); // first word of `cur` that is not whole inside the range
  const wordDelta = (pa - ca) / 4; // word distance between the two grids (whole when useWords)
  let i = 0;
  let d = 0;
  for (;;) {
    // Start of a pair: QEMU wants room for two bytes here.
    if (d + 2 > dlen) return -1;

    // Zero run: bytes equal in both versions.
    const zStart = i;
    if (useWords) {
      while (i < slen && ((ca + i) & 3) !== 0 && prev[prevOff + i] === cur[curOff + i]) i++;
      if (i < slen && ((ca + i) & 3) === 0) {
        let wc = (ca + i) / 4;
        let wp = wc + wordDelta;
        while (wc < wordEnd && pw[wp] === cw[wc]) {
          wc++;
          wp++;
        }
        i = wc * 4 - ca;
        while (i < slen && prev[prevOff + i] === cur[curOff + i]) i++;
      }
    } else {
      while (i < slen && prev[prevOff + i] === cur[curOff + i]) i++;
    }
    // Trailing zero run: not encoded. An unchanged range returns 0 here.
    if (i === slen) return d;
    const zrun = i - zStart;
    if (zrun > ULEB_MAX) throw unencodable(zrun, zStart);
    d += ulebWrite(out, outOff + d, zrun);
    if (d + 2 > dlen) return -1;

    // Non-zero run: bytes that differ.
    const nStart = i;
    if (useWords) {
      while (i < slen && ((ca + i) & 3) !== 0 && prev[prevOff + i] !== cur[curOff + i]) i++;
      if (i < slen && ((ca + i) & 3) === 0) {
        let wc = (ca + i) / 4;
        let wp = wc + wordDelta;
        while (wc < wordEnd) {
          const x = pw[wp]! ^ cw[wc]!;
          // Stop at the first word holding an equal byte (a zero byte of x).
          if (((x - 0x01010101) & ~x & 0x80808080) !== 0) break;
          wc++;
          wp++;
        }
        i = wc * 4 - ca;
        while (i < slen && prev[prevOff + i] !== cur[curOff + i]) i++;
      }
    } else {
      while (i < slen && prev[prevOff + i] !== cur[curOff + i]) i++;
    }
    const nzrun = i - nStart;
    if (nzrun > ULEB_MAX) throw unencodable(nzrun, nStart);
    d += ulebWrite(out, outOff + d, nzrun);
    if (d + nzrun > dlen) return -1;
    if (nzrun <= COPY_LOOP_MAX) {
      const from = curOff + nStart;
      const to = outOff + d;
      for (let k = 0; k < nzrun; k++) out[to + k] = cur[from + k]!;
    } else {
      out.set(cur.subarray(curOff + nStart, curOff + i), outOff + d);
    }
    d += nzrun;
    if (i === slen) return d;
  }
}

function unencodable(run: number, at: number): XbzrleError {
  return new XbzrleError(
    'ERR_XBZRLE_UNENCODABLE',
    `a run of ${run} bytes at page offset ${at} cannot be encoded (XBZRLE lengths stop at 16383)`,
    { offset: at },
  );
}

/**
 * Encodes `cur` against `prev` exactly as QEMU's scalar encoder does, writing
 * the delta into `out` with `dlen = out.length`.
 *
 * All three arguments may be any `Uint8Array` view (any `byteOffset`); `prev`
 * and `cur` must have the same length. `out` may overlap `prev` or `cur` (to
 * encode in place): the delta describes them as they were before the call.
 * Nothing is allocated per call for deltas up to 4 KiB (the first call sets
 * up the kernel's staging area).
 *
 * @returns the number of bytes written; `0` when `cur` equals `prev` (nothing
 *   written); `-1` on overflow by QEMU's rule: `out.length < 2`, or the delta
 *   is longer than `out.length`, or longer than `out.length - 2` when the page
 *   ends with unchanged bytes (an empty page gives 0). After `-1` the contents of `out` are unspecified
 *   but nothing past `out.length` is touched.
 * @throws RangeError when the lengths differ; XbzrleError
 *   `ERR_XBZRLE_UNENCODABLE` when a run over 16383 bytes would have to be
 *   written (only possible with pages over 16 KiB, or a 16 KiB page in which
 *   every byte changed)
 *
 * @example
 * ```ts
 * const out = new Uint8Array(4096)
 * const n = encodeXbzrle(oldPage, newPage, out)
 * if (n > 0) send(out.subarray(0, n))
 * ```
 */
export function encodeXbzrle(prev: Uint8Array, cur: Uint8Array, out: Uint8Array): number {
  if (!(prev instanceof Uint8Array)) throw argTypeError('prev', 'a Uint8Array', prev);
  if (!(cur instanceof Uint8Array)) throw argTypeError('cur', 'a Uint8Array', cur);
  if (!(out instanceof Uint8Array)) throw argTypeError('out', 'a Uint8Array', out);
  const slen = cur.length;
  if (prev.length !== slen) throw argRangeError('cur.length', `equal to prev.length (${prev.length})`, slen);
  // All three in the kernel's memory (allocPages): straight to the kernel. Views with
  // a kernel address only ever come from the engine, so the engine exists. (The
  // address property, not `byteOffset` or `instanceof`: see KernelBytes.)
  const p = kernelAddress(prev);
  const c = kernelAddress(cur);
  const o = kernelAddress(out);
  if (p >= 0 && c >= 0 && o >= 0 && slen >= SIMD_MIN_LENGTH && slen <= SIMD_MAX_LENGTH) {
    const dlen = Math.min(out.length, 2 * slen + 8);
    // An `out` overlapping an input would be written before it is read: encodeSimd below.
    if (apart(o, dlen, c, slen) && apart(o, dlen, p, slen)) {
      const r = getEngine()!.encode(p, c, slen, o, dlen);
      if (r !== UNENCODABLE) return r;
    }
  }
  if (slen >= SIMD_MIN_LENGTH && slen <= SIMD_MAX_LENGTH) {
    const engine = getEngine();
    if (engine !== null) {
      // Ordinary buffers (the common case): both pages copied into the staging area.
      // Any operand in the kernel's memory: used in place, the others copied in.
      const r = p >= 0 || c >= 0 || o >= 0 ? encodeSimd(engine, prev, cur, out) : encodeStaged(engine, prev, cur, out);
      if (r !== UNENCODABLE) return r;
      // Where QEMU aborts: the TypeScript path throws with the exact run.
    }
  }
  return encodeTs(prev, cur, out);
}

/**
 * {@link encodeRange} over whole views. It reads the inputs as it writes, so an
 * `out` that overlaps one gets a copy of it to read from.
 */
function encodeTs(prev: Uint8Array, cur: Uint8Array, out: Uint8Array): number {
  if (overlaps(out, cur)) cur = cur.slice();
  if (overlaps(out, prev)) prev = prev.slice();
  return encodeRange(prev, 0, cur, 0, cur.length, out, 0, out.length);
}

/** True when the byte ranges [a, a + alen) and [b, b + blen) are disjoint. */
function apart(a: number, alen: number, b: number, blen: number): boolean {
  return a >= b + blen || b >= a + alen;
}

/** True when two views share bytes (of the same buffer). */
function overlaps(x: Uint8Array, y: Uint8Array): boolean {
  return x.buffer === y.buffer && !apart(x.byteOffset, x.length, y.byteOffset, y.length);
}

/**
 * {@link encodeXbzrle} for operands outside the kernel's memory: `prev` and
 * `cur` are copied into the engine's staging area (plain memory, where a copy
 * is a plain `memcpy`), encoded there, and the delta copied out. Pages too
 * large for the area go through {@link encodeSimd}. Returns -2 where QEMU
 * would abort.
 */
export function encodeStaged(engine: WasmEngine, prev: Uint8Array, cur: Uint8Array, out: Uint8Array): number {
  const st = engine.staging();
  const slen = cur.length;
  const olen = out.length;
  // No delta is longer than 1.5 × slen, so a larger dlen never changes the result.
  const dlen = olen < 2 * slen + 8 ? olen : 2 * slen + 8;
  if (st === null || 2 * slen + OUT_GAP + dlen > st.capacity) return encodeSimd(engine, prev, cur, out);
  const mem = st.bytes;
  const p = st.base;
  const c = p + slen;
  const o = c + slen + OUT_GAP;
  mem.set(prev, p);
  mem.set(cur, c);
  const len = st.encode(p, c, slen, o, dlen);
  if (len > 0) out.set(deltaViews.get(mem, o, len));
  return len;
}

/** Views of the staging area's delta by length (the area moves only with the engine or page size). */
const deltaViews = new DeltaViews(4096);

/** The delta is written this far past `cur` (off its 4 KiB grid position, see STAGING_OFFSET). */
const OUT_GAP = 1024;


/** Below this the call and copies cost more than the SIMD kernel saves. */
const SIMD_MIN_LENGTH = 64;
/** Above this, pages are not copied into the kernel's memory. */
const SIMD_MAX_LENGTH = 1 << 24;
const UNENCODABLE = -2;

/**
 * {@link encodeXbzrle} on the SIMD kernel. Operands in the kernel's memory
 * (from `allocPages`) are read and written in place; others are copied in
 * (and the delta copied out). Returns -2 where QEMU would abort.
 */
export function encodeSimd(engine: WasmEngine, prev: Uint8Array, cur: Uint8Array, out: Uint8Array): number {
  const slen = cur.length;
  // No delta is longer than 1.5 × slen, so a larger dlen never changes the result.
  const dlen = out.length < 2 * slen + 8 ? out.length : 2 * slen + 8;
  let p = engine.addressOf(prev);
  let c = engine.addressOf(cur);
  let ownOut = engine.addressOf(out);
  // An `out` overlapping an input in the kernel's memory would be written before the
  // input is read: the delta then goes to scratch and is copied out at the end.
  if (ownOut >= 0 && ((p >= 0 && !apart(ownOut, dlen, p, slen)) || (c >= 0 && !apart(ownOut, dlen, c, slen)))) ownOut = -1;
  if (p >= 0 && c >= 0 && ownOut >= 0) return engine.encode(p, c, slen, ownOut, dlen);
  const need = (p >= 0 ? 0 : slen) + (c >= 0 ? 0 : slen) + (ownOut >= 0 ? 0 : dlen);
  let at = engine.scratch(need);
  if (at < 0) return encodeTs(prev, cur, out);
  const mem = engine.bytes();
  if (p < 0) {
    mem.set(prev, at);
    p = at;
    at += slen;
  }
  if (c < 0) {
    mem.set(cur, at);
    c = at;
    at += slen;
  }
  const o = ownOut >= 0 ? ownOut : at;
  const len = engine.encode(p, c, slen, o, dlen);
  if (len > 0 && ownOut < 0) out.set(mem.subarray(o, o + len));
  return len;
}
