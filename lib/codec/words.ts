/**
 * Word views for the scanning loops. Comparing 32 bits at a time needs an
 * `Int32Array` over the same memory as a byte view; creating one per call
 * would allocate on every page, so the last few views are memoised by their
 * `ArrayBuffer`. A view is only used when the byte view sits at the same
 * alignment as the word grid, which callers check with `absoluteOffset`.
 */

const MEMO_SIZE = 4;
const memoBuffers: (ArrayBufferLike | null)[] = new Array<ArrayBufferLike | null>(MEMO_SIZE).fill(null);
const memoWords: Int32Array[] = new Array<Int32Array>(MEMO_SIZE);
let memoNext = 0;

/** An `Int32Array` covering the whole of `bytes.buffer` (rounded down to whole words). */
export function wordsOf(bytes: Uint8Array): Int32Array {
  const buffer = bytes.buffer;
  for (let i = 0; i < MEMO_SIZE; i++) {
    if (memoBuffers[i] === buffer) {
      const words = memoWords[i]!;
      // A resizable buffer may have grown since: refresh the view.
      if (words.length === buffer.byteLength >>> 2) return words;
      const fresh = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
      memoWords[i] = fresh;
      return fresh;
    }
  }
  const words = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
  memoBuffers[memoNext] = buffer;
  memoWords[memoNext] = words;
  memoNext = (memoNext + 1) % MEMO_SIZE;
  return words;
}
