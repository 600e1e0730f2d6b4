import { open } from 'node:fs/promises';
import { allocPages, freePages } from '../codec/pages.js';
import { namedError } from './errors.js';

/**
 * Reads an image file in runs of `runBytes` straight into the kernel's memory
 * (`allocPages` buffers, which the encoder reads in place: no staging copy),
 * reading the next run while the caller works on the current one. A run
 * handed out stays valid until the caller asks for the one after the next
 * (two buffers take turns), so the caller must be done with it (e.g. its
 * write callback fired) before asking for the next run.
 */
export async function* readImageRuns(path: string, runBytes: number, pageSize: number): AsyncGenerator<Uint8Array, void, undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw namedError(path, err);
  }
  const pages = Math.max(1, Math.floor(runBytes / pageSize));
  const buffers = [allocPages(pages, pageSize), allocPages(pages, pageSize)] as const;
  let position = 0;
  const fill = async (buf: Uint8Array): Promise<number> => {
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    position += got;
    return got;
  };
  try {
    let turn = 0;
    let next = fill(buffers[0]);
    for (;;) {
      const got = await next.catch((err: unknown) => {
        throw namedError(path, err);
      });
      if (got === 0) return;
      const current = buffers[turn]!;
      turn ^= 1;
      // Read ahead into the other buffer while the caller encodes this one.
      next = got < current.length ? Promise.resolve(0) : fill(buffers[turn]!);
      next.catch(() => undefined); // awaited on the next turn
      yield current.subarray(0, got);
    }
  } finally {
    await handle.close().catch(() => undefined);
    freePages(buffers[0]);
    freePages(buffers[1]);
  }
}
