import { isShared } from './copy.js';
import { argTypeError, XbzrleError } from '../errors.js';
import { ulebRead } from './uleb128.js';
import { getEngine, type WasmEngine } from './wasm/engine.js';
import { DeltaViews } from './delta-views.js';

/** Below this many bytes a run is copied byte by byte instead of with `set`. */
const COPY_LOOP_MAX = 64;

/** Why the last {@link checkDelta} call failed. */
let failReason = '';

/**
 * Walks a delta and applies every check of QEMU's `xbzrle_decode_buffer`
 * (spec: xbzrle-codec.md §4) without writing anything.
 *
 * @returns the decode result (end offset of the last non-zero run) when the
 *   delta is valid for a page of `dlen` bytes; otherwise `-1 - pos`, `pos`
 *   being the position in the delta of the failing element.
 */
export function checkDelta(src: Uint8Array, srcOff: number, slen: number, dlen: number): number {
  let i = 0;
  let d = 0;
  while (i < slen) {
    if (slen - i < 2) return fail(i, 'a single byte is left where a zero run must start');
    let v = ulebRead(src, srcOff + i);
    if (v < 0) return fail(i, 'zero-run length is longer than two bytes');
    const zrun = v & 0x3fff;
    if (zrun === 0 && i !== 0) return fail(i, 'zero-length zero run after the first pair');
    const zAt = i;
    i += v >>> 14;
    d += zrun;
    if (d > dlen) return fail(zAt, `zero run ends at ${d}, past the end of the ${dlen}-byte page`);
    if (slen - i < 2) return fail(i, 'the delta ends where a non-zero run must start');
    v = ulebRead(src, srcOff + i);
    if (v < 0) return fail(i, 'non-zero-run length is longer than two bytes');
    const nzrun = v & 0x3fff;
    if (nzrun === 0) return fail(i, 'zero-length non-zero run');
    const nAt = i;
    i += v >>> 14;
    if (d + nzrun > dlen) return fail(nAt, `non-zero run ends at ${d + nzrun}, past the end of the ${dlen}-byte page`);
    if (i + nzrun > slen) return fail(nAt, `non-zero run of ${nzrun} bytes but only ${slen - i} left in the delta`);
    i += nzrun;
    d += nzrun;
  }
  return d;
}

function fail(pos: number, reason: string): number {
  failReason = reason;
  return -1 - pos;
}

/** Applies a delta already accepted by {@link checkDelta}. */
export function applyChecked(src: Uint8Array, srcOff: number, slen: number, dst: Uint8Array, dstOff: number): void {
  let i = srcOff;
  const end = srcOff + slen;
  let d = dstOff;
  while (i < end) {
    let v = ulebRead(src, i);
    i += v >>> 14;
    d += v & 0x3fff;
    v = ulebRead(src, i);
    i += v >>> 14;
    const n = v & 0x3fff;
    if (n <= COPY_LOOP_MAX) {
      for (let k = 0; k < n; k++) dst[d + k] = src[i + k]!;
    } else {
      dst.set(src.subarray(i, i + n), d);
    }
    i += n;
    d += n;
  }
}

/**
 * Validates, then applies, `slen` delta bytes at `src[srcOff]` to the page of
 * `dlen` bytes at `dst[dstOff]`. On rejection nothing is written and an
 * `XbzrleError` is thrown whose `offset` is `errorBase` + the position in the
 * delta.
 */
export function decodeRange(
  src: Uint8Array,
  srcOff: number,
  slen: number,
  dst: Uint8Array,
  dstOff: number,
  dlen: number,
  errorBase = 0,
): number {
  const result = checkDelta(src, srcOff, slen, dlen);
  if (result < 0) throw corrupt(result, errorBase);
  applyChecked(src, srcOff, slen, dst, dstOff);
  return result;
}

/** The error for a negative {@link checkDelta} result. */
export function corrupt(result: number, errorBase = 0): XbzrleError {
  const pos = -1 - result;
  return new XbzrleError('ERR_XBZRLE_CORRUPT', `corrupt XBZRLE delta at byte ${errorBase + pos}: ${failReason}`, { offset: errorBase + pos });
}

/**
 * Applies an XBZRLE `delta` to `page` in place (`page` must hold the old
 * version) and returns what QEMU's decoder returns: the end offset of the last
 * changed run (0 for an empty delta), not the page length.
 *
 * Accepts exactly the deltas QEMU accepts, including over-long two-byte
 * lengths (`85 00`) and a zero first zero run, and rejects exactly what QEMU
 * rejects. Unlike QEMU it validates the whole delta first, so a rejected delta
 * leaves `page` unchanged. Both arguments may be any `Uint8Array` view; they
 * should not overlap (if they do, nothing outside `page` is written, but its
 * new content is unspecified and an error other than `XbzrleError` may be
 * thrown).
 *
 * @throws XbzrleError `ERR_XBZRLE_CORRUPT` with `offset` = the position in
 *   `delta` of the element that failed
 *
 * @example
 * ```ts
 * const end = decodeXbzrle(delta, page) // page now holds the new version
 * ```
 */
export function decodeXbzrle(delta: Uint8Array, page: Uint8Array): number {
  if (!(delta instanceof Uint8Array)) throw argTypeError('delta', 'a Uint8Array', delta);
  if (!(page instanceof Uint8Array)) throw argTypeError('page', 'a Uint8Array', page);
  return decodeInto(delta, 0, delta.length, page, 0, page.length, 0);
}

/**
 * @internal Every decoder entry point comes here: validates, then applies,
 * `slen` delta bytes at `src[srcOff]` to the page of `dlen` bytes at
 * `dst[dstOff]`, on the fastest path for where the page lives — the SIMD
 * kernel in place (a page in the kernel's memory), the kernel's staging area
 * (a page elsewhere, long deltas), or TypeScript. Same results and errors as
 * {@link decodeRange}; a rejected delta writes nothing.
 */
export function decodeInto(src: Uint8Array, srcOff: number, slen: number, dst: Uint8Array, dstOff: number, dlen: number, errorBase: number): number {
  if (slen >= SIMD_DECODE_MIN && slen <= KERNEL_MAX_LENGTH && dlen <= KERNEL_MAX_LENGTH) {
    const engine = getEngine();
    if (engine !== null) {
      const at = engine.addressOf(dst);
      if (at >= 0) return decodeSimd(engine, src, srcOff, slen, at + dstOff, dlen, errorBase);
      if (slen >= STAGED_DECODE_MIN) return decodeStaged(engine, src, srcOff, slen, dst, dstOff, dlen, errorBase);
    }
  }
  return decodeRange(src, srcOff, slen, dst, dstOff, dlen, errorBase);
}

/**
 * From this delta length on, a page outside the kernel's memory is decoded
 * by the kernel in its staging area (page copied in and out) rather than by
 * TypeScript: 2-3x faster on dense deltas, about even at 200-300 bytes
 * (measured on 4 KiB pages).
 */
export const STAGED_DECODE_MIN = 512;


/** Bytes between the staged page and the staged delta. */
const STAGE_GAP = 64;

/** Views of the staged page by length (one per page size in practice; longer pages get a view per call). */
const stagedPageViews = new DeltaViews(1 << 16);

/**
 * {@link decodeRange} through the kernel for a page outside its memory: the
 * page and the delta are copied into the staging area, decoded there, and
 * the page copied back when the delta is accepted (a rejected delta changes
 * nothing). Falls back to TypeScript when there is no staging area, the page
 * and delta do not fit in it, or the page is in a SharedArrayBuffer (another
 * thread may be writing the bytes the delta leaves alone; copying the page
 * back would undo that).
 */
export function decodeStaged(
  engine: WasmEngine,
  src: Uint8Array,
  srcOff: number,
  slen: number,
  dst: Uint8Array,
  dstOff: number,
  dlen: number,
  errorBase: number,
): number {
  const st = engine.staging();
  if (st === null || dlen + STAGE_GAP + slen > st.capacity || isShared(dst)) {
    return decodeRange(src, srcOff, slen, dst, dstOff, dlen, errorBase);
  }
  const mem = st.bytes;
  const pg = st.base;
  const dl = pg + dlen + STAGE_GAP;
  mem.set(dstOff === 0 && dst.length === dlen ? dst : dst.subarray(dstOff, dstOff + dlen), pg);
  mem.set(srcOff === 0 && src.length === slen ? src : src.subarray(srcOff, srcOff + slen), dl);
  const result = st.decode(dl, slen, pg, dlen);
  if (result < 0) {
    checkDelta(src, srcOff, slen, dlen); // sets the reason; the position is the same
    throw corrupt(result, errorBase);
  }
  dst.set(stagedPageViews.get(mem, pg, dlen), dstOff);
  return result;
}

/**
 * Pages and deltas longer than this (16 MiB) are decoded by TypeScript: the
 * kernel's results are signed 32-bit numbers, so offsets from 2 GiB on would
 * read as errors.
 */
const KERNEL_MAX_LENGTH = 1 << 24;

/** Below this delta length the TypeScript decoder is faster than a kernel call (measured). */
export const SIMD_DECODE_MIN = 128;

/**
 * The SIMD kernel's decoder for a page at address `dst` of the kernel's
 * memory: the delta is copied in unless it lives there too. Same results and
 * errors as {@link decodeRange}; a rejected delta writes nothing.
 */
export function decodeSimd(engine: WasmEngine, src: Uint8Array, srcOff: number, slen: number, dst: number, dlen: number, errorBase: number): number {
  const at = src === engine.bytes() ? 0 : engine.addressOf(src);
  let s = at + srcOff;
  // A delta outside the kernel's memory is copied in; so is one that overlaps the page it
  // is applied to (the kernel would read bytes it has already overwritten).
  if (at < 0 || (s < dst + dlen && dst < s + slen)) {
    s = engine.scratch(slen);
    // No room to copy it in: TypeScript decodes from a private copy of it.
    if (s < 0) return decodeRange(src.slice(srcOff, srcOff + slen), 0, slen, engine.bytes(), dst, dlen, errorBase);
    engine.bytes().set(src.subarray(srcOff, srcOff + slen), s);
  }
  const result = engine.decode(s, slen, dst, dlen);
  if (result < 0) {
    checkDelta(src, srcOff, slen, dlen); // sets the reason; the position is the same
    throw corrupt(result, errorBase);
  }
  return result;
}
