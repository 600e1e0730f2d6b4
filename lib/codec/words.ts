/**
 * Word views for the scanning loops. Comparing 32 bits at a time needs an
 * `Int32Array` over the same memory as a byte view; creating one per call
 * would allocate on every page, so views are kept per `ArrayBuffer` in a
 * `WeakMap` (they go when their buffer goes). A view is only used where the
 * byte view sits on the word grid, which callers check.
 *
 * Word indexes are computed with division, not `>>> 2`, so buffers of 4 GiB
 * and more work.
 */

const views = new WeakMap<ArrayBufferLike, Int32Array>();

/** An `Int32Array` covering the whole of `bytes.buffer` (rounded down to whole words). */
export function wordsOf(bytes: Uint8Array): Int32Array {
  const buffer = bytes.buffer;
  const words = views.get(buffer);
  const length = Math.floor(buffer.byteLength / 4);
  // A resizable or growable buffer may have changed size since: refresh the view.
  if (words !== undefined && words.length === length) return words;
  const fresh = new Int32Array(buffer, 0, length);
  views.set(buffer, fresh);
  return fresh;
}
