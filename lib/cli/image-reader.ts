import { allocPages, freePages } from '../codec/pages.js';
import { fileSource, readAhead } from '../delta/node.js';
import { namedError } from './errors.js';

/**
 * Reads an image file in steps straight into the kernel's memory
 * (`allocPages` buffers, which the encoder reads in place: no staging copy),
 * reading the next step while the caller works on the current one — the
 * read-ahead `diff` uses. A step handed out stays valid until the caller asks
 * for the one after the next (two buffers take turns), so the caller must be
 * done with it (e.g. its write callback fired) before asking for the next.
 */
export async function* readImageRuns(path: string, stepBytes: number, pageSize: number): AsyncGenerator<Uint8Array, void, undefined> {
  let file;
  try {
    file = await fileSource(path);
  } catch (err) {
    throw namedError(path, err);
  }
  const pages = Math.max(1, Math.floor(stepBytes / pageSize));
  const buffers: [Uint8Array, Uint8Array] = [allocPages(pages, pageSize), allocPages(pages, pageSize)];
  try {
    yield* readAhead(file.src, buffers, file.src.size, path);
  } finally {
    await file.close().catch(() => undefined);
    freePages(buffers[0]);
    freePages(buffers[1]);
  }
}
