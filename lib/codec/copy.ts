/** A plain buffer for copies into shared memory from a misaligned source (grown on demand, never shrunk). */
let scratch = new Uint8Array(0);

/** Below this many bytes a misaligned copy is cheaper than two aligned ones. */
const SCRATCH_MIN = 256;

/** True for a view of a SharedArrayBuffer, of this realm or another (so not `instanceof`). */
export function isShared(u8: Uint8Array): boolean {
  return Object.prototype.toString.call(u8.buffer) === '[object SharedArrayBuffer]';
}

/**
 * Copies `src` into `dst` at `at`, as `dst.set(src, at)`. Into a
 * SharedArrayBuffer (the kernel's memory), V8 copies a word at a time only
 * when source and destination share their alignment mod 8, and byte by byte
 * otherwise, about 4x slower (a page of a RAM record usually starts at an odd
 * offset of its chunk): such a source goes through a plain scratch buffer
 * placed to match, two fast copies instead of one slow one.
 */
export function copyInto(dst: Uint8Array, at: number, src: Uint8Array): void {
  const align = (dst.byteOffset + at) & 7;
  if ((src.byteOffset & 7) === align || src.length < SCRATCH_MIN || !isShared(dst)) {
    dst.set(src, at);
    return;
  }
  if (scratch.length < src.length + 8) scratch = new Uint8Array(src.length + 8);
  const staged = scratch.subarray(align, align + src.length);
  staged.set(src);
  dst.set(staged, at);
}
