/** A plain buffer for copies into shared memory from a misaligned source (grown on demand, never shrunk). */
let scratch = new Uint8Array(0);

/** Below this many bytes a misaligned copy is cheaper than two aligned ones. */
const SCRATCH_MIN = 256;

const SAB = (globalThis as { SharedArrayBuffer?: abstract new (n: number) => ArrayBufferLike }).SharedArrayBuffer;

/** True for a view of a SharedArrayBuffer, of this realm or another. */
export function isShared(u8: Uint8Array): boolean {
  const b = u8.buffer;
  // `instanceof` first (a few ns; the tag check cost ~120 ns, 16 ms of a 512 MiB encode); the tag for other realms' buffers.
  if (b instanceof ArrayBuffer) return false;
  if (SAB !== undefined && b instanceof SAB) return true;
  return Object.prototype.toString.call(b) === '[object SharedArrayBuffer]';
}

/**
 * Copies `src` into `dst` at `at`, as `dst.set(src, at)`. To or from a
 * SharedArrayBuffer (the kernel's memory), V8 copies a word at a time only
 * when source and destination share their alignment mod 8, and byte by byte
 * otherwise, about 4x slower (a page of a RAM record usually starts at an odd
 * offset of its chunk or slab): such a copy goes through a plain scratch
 * buffer placed at the shared side's alignment, two fast copies instead of
 * one slow one.
 */
export function copyInto(dst: Uint8Array, at: number, src: Uint8Array): void {
  const dstAlign = (dst.byteOffset + at) & 7;
  const srcAlign = src.byteOffset & 7;
  if (srcAlign === dstAlign || src.length < SCRATCH_MIN) {
    dst.set(src, at);
    return;
  }
  const dstShared = isShared(dst);
  if (dstShared === isShared(src)) {
    dst.set(src, at); // plain to plain: a plain copy; shared to shared: rare (no plain side to stage on)
    return;
  }
  const align = dstShared ? dstAlign : srcAlign;
  if (scratch.length < src.length + 8) scratch = new Uint8Array(src.length + 8);
  const staged = scratch.subarray(align, align + src.length);
  staged.set(src);
  dst.set(staged, at);
}

/** Below this many bytes a fill goes byte by byte anyway. */
const FILL_WIDE_MIN = 64;

/**
 * Sets bytes `from` to `to` (exclusive) of `dst` to `value`, as
 * `dst.fill(value, from, to)`. On a SharedArrayBuffer (the kernel's memory)
 * V8 fills a `Uint8Array` byte by byte, ~40 × slower than on plain memory
 * (314 µs a MiB against 8 on the bench VM); the aligned middle goes through
 * a view of wider elements instead (41 µs a MiB for zeros).
 */
export function fillInto(dst: Uint8Array, value: number, from: number, to: number): void {
  if (to - from < FILL_WIDE_MIN || !isShared(dst)) {
    dst.fill(value, from, to);
    return;
  }
  const abs = dst.byteOffset + from;
  const head = (8 - (abs & 7)) & 7;
  const start = abs + head; // 8-aligned, in the buffer
  const words = (dst.byteOffset + to - start) >>> 3;
  dst.fill(value, from, from + head);
  const b = value & 0xff;
  if (b === 0) new Float64Array(dst.buffer, start, words).fill(0);
  else new Uint32Array(dst.buffer, start, words * 2).fill(b * 0x01010101);
  dst.fill(value, start + words * 8 - dst.byteOffset, to);
}
