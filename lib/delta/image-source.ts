/**
 * Images as sources of pages: a file's random reads or a pipe's bytes in
 * order, and the read-ahead over them that `diff`, `patch` and the CLI's
 * image readers share. Nothing here loads the stream classes or the codecs.
 */
import { open } from 'node:fs/promises';
import { fillInto } from '../codec/copy.js';

/**
 * An image given as something other than a path: its size, and either
 * random reads (a file-like source: OLD's dedup index, references) or its
 * bytes in order (a pipe).
 */
export interface ImageSource {
  /** Size in bytes. */
  size: number;
  /** Reads up to `length` bytes at `position` into `into` from its start; resolves to the count read. */
  read?(into: Uint8Array, length: number, position: number): Promise<number>;
  /** The bytes in order, when there is no `read`. */
  stream?: AsyncIterable<Uint8Array>;
}

/** @internal The descriptors of the files behind the sources {@link fileSource} made (for synchronous reads). */
export const fileDescriptors = new WeakMap<ImageSource, number>();

/** @internal A file as an {@link ImageSource} (random reads), or a pipe or device read in order; `close` when done. */
export async function fileSource(path: string): Promise<{ src: ImageSource; close: () => Promise<void> }> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      // A pipe or device: read it in order.
      const stream = fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false });
      return { src: { size: st.size, stream }, close: () => fh.close() };
    }
    const src: ImageSource = { size: st.size, read: async (into, length, position) => (await fh.read(into, 0, length, position)).bytesRead };
    fileDescriptors.set(src, fh.fd);
    return { src, close: () => fh.close() };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** @internal Reads exactly `length` bytes at `position` (a source that ends first shrank while read). */
export async function readFully(src: ImageSource, into: Uint8Array, length: number, position: number, name: string): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await src.read!(done === 0 ? into : into.subarray(done), length - done, position + done);
    if (n === 0) throw new Error(`${name}: file shrank while being read`);
    done += n;
  }
}

/**
 * @internal Reads `src` from 0 in steps of the buffers' size into `bufs` (two or more, in turn),
 * `bufs.length - 1` steps ahead of the caller: a step handed out stays valid until the caller asks
 * for the one after it. (The reads run on libuv's threads, several at once with more buffers.)
 */
export async function* readAhead(src: ImageSource, bufs: Uint8Array[], total: number, name: string): AsyncGenerator<Uint8Array> {
  const step = bufs[0]!.length; // the buffers' size is the step
  const ahead = bufs.length - 1;
  const want = (i: number): number => Math.max(0, Math.min(step, src.size - i * step));
  const steps = Math.ceil(total / step);
  const fill = async (i: number): Promise<Uint8Array> => {
    const buf = bufs[i % bufs.length]!;
    const n = Math.min(step, total - i * step);
    const have = want(i);
    if (have > 0) await readFully(src, buf, have, i * step, name);
    if (have < n) fillInto(buf, 0, have, n);
    return n === step ? buf : buf.subarray(0, n);
  };
  const inFlight: Promise<Uint8Array>[] = [];
  let issued = 0;
  const issue = (): void => {
    const p = fill(issued++);
    p.catch(() => undefined); // awaited in turn; handled if the consumer stops first
    inFlight.push(p);
  };
  while (issued < steps && inFlight.length < ahead) issue();
  try {
    for (let i = 0; i < steps; i++) {
      const cur = await inFlight.shift()!;
      if (issued < steps) issue();
      yield cur;
    }
  } finally {
    // The buffers are the caller's again only once no read is writing into them.
    await Promise.allSettled(inFlight);
  }
}

