import { argRangeError, argTypeError } from '../errors.js';
import { getEngine } from './wasm/engine.js';

/**
 * A zeroed buffer of `count` pages inside the SIMD kernel's memory, so the
 * codec and the streams read it in place, with no copy (`encodeXbzrle` on
 * two such buffers runs at the kernel's full speed). The buffer stays valid
 * for good: the kernel's memory is shared and never detaches its views. Give
 * it back with {@link freePages} when done; it is not freed on its own.
 *
 * Without WebAssembly SIMD (or shared memory) this is a plain `Uint8Array`.
 *
 * @param count - number of pages (a positive integer)
 * @param pageSize - page size in bytes, a power of two (default 4096)
 * @throws RangeError for a bad count or page size
 *
 * @example
 * ```ts
 * const pages = allocPages(512)          // 2 MiB, page-aligned
 * guest.readInto(pages)
 * enc.write({ block: 'ram', offset: 0, data: pages })
 * ```
 */
export function allocPages(count: number, pageSize = 4096): Uint8Array {
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1) throw argRangeError('count', 'a positive integer', count);
  if (typeof pageSize !== 'number' || !Number.isSafeInteger(pageSize) || pageSize < 1 || (pageSize & (pageSize - 1)) !== 0 || pageSize > 1 << 24) {
    throw argRangeError('pageSize', 'a power of two up to 16 MiB', pageSize);
  }
  const size = count * pageSize;
  const engine = getEngine();
  if (engine !== null && engine.shared) {
    const ptr = engine.allocZeroed(size, Math.max(64, Math.min(pageSize, 65536)));
    if (ptr >= 0) {
      const pages = engine.region(ptr, size);
      engine.adoptPages(ptr, pages);
      return pages;
    }
  }
  return new Uint8Array(size);
}

/**
 * Gives back a buffer from {@link allocPages}: the very array it returned (not
 * a part of it, nor another view of the same bytes). Using the buffer
 * afterwards is an error: its memory is reused. Plain arrays (the fallback)
 * are left to the garbage collector.
 *
 * @throws TypeError when `pages` is a view into the kernel's memory that
 *   allocPages did not return, or one already given back (even when its
 *   memory has since been handed out again: that buffer stays allocated)
 */
export function freePages(pages: Uint8Array): void {
  if (!(pages instanceof Uint8Array)) throw argTypeError('pages', 'a Uint8Array from allocPages', pages);
  const engine = getEngine();
  if (engine === null) return;
  const at = engine.addressOf(pages);
  if (at < 0) return;
  if (!engine.returnPages(pages, at)) throw argTypeError('pages', 'a whole buffer from allocPages, not yet given back', pages);
}
