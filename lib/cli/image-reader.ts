import { allocPages, freePages } from '../codec/pages.js';
import { fileSource, readAhead } from '../delta/image-source.js';
import { namedError } from './errors.js';

/**
 * Reads an image file in steps straight into the kernel's memory
 * (`allocPages` buffers, which the encoder reads in place: no staging copy),
 * reading the next step while the caller works on the current one — the
 * read-ahead `diff` uses. A step handed out stays valid until the caller asks
 * for the next one (two buffers take turns: asking for step i + 1 starts the
 * read of step i + 2 into step i's buffer), so the caller must be done with it
 * before asking for the next. With `inKernel` false, plain buffers (for a
 * caller that copies the bytes out: copies from shared memory are slower).
 */
export async function* readImageRuns(path: string, stepBytes: number, pageSize: number, inKernel = true): AsyncGenerator<Uint8Array, void, undefined> {
  let file;
  try {
    file = await fileSource(path);
  } catch (err) {
    throw namedError(path, err);
  }
  // No bigger than the file: the buffers of a small image would otherwise be 2 MiB each, and cleared
  // when reused (the next image's), which first touches all of their memory (~11 ms a buffer on a VM).
  const pages = Math.max(1, Math.min(Math.floor(stepBytes / pageSize), Math.ceil(file.src.size / pageSize)));
  // Kernel memory (pages encoded in place) or plain buffers (bytes copied out: cheaper from plain memory).
  const buffers: [Uint8Array, Uint8Array] = inKernel ? [allocPages(pages, pageSize), allocPages(pages, pageSize)] : [new Uint8Array(pages * pageSize), new Uint8Array(pages * pageSize)];
  try {
    yield* readAhead(file.src, buffers, file.src.size, path);
  } finally {
    await file.close().catch(() => undefined);
    if (inKernel) {
      freePages(buffers[0]);
      freePages(buffers[1]);
    }
  }
}
