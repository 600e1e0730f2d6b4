import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { argTypeError, argRangeError } from '../errors.js';
import type { RamBlock } from '../format/record-writer.js';
import type { PageStore } from './page-store.js';

/** Options of {@link FilePageStore}. */
export interface FilePageStoreOptions {
  /** Folder holding one image per block, named by {@link blockFileName}. Used when `path` is not given. */
  dir?: string;
  /** The image file of `block`. Takes precedence over `dir`. */
  path?: (block: string) => string;
  /** Set each file's length to the block's MEM_SIZE length when it is declared (default true). */
  truncate?: boolean;
  /** fsync every file in `finish()` (default true). */
  fsync?: boolean;
  /** Bytes of consecutive page writes gathered into one write (default 1 MiB). */
  bufferSize?: number;
}

/** The file name of a block's image: its id with every '/' replaced by '_', plus `.bin`. */
export function blockFileName(block: string): string {
  return block.replace(/\//g, '_') + '.bin';
}

/** A block and its image file. */
export interface BlockFile {
  /** Block name. */
  block: string;
  /** Its image file. */
  path: string;
}

interface OpenFile {
  path: string;
  handle: Promise<FileHandle>;
}

/**
 * A {@link PageStore} over one image file per block: pages are read and
 * written in place through a `FileHandle`, so decoding a 64 GiB image needs
 * memory for a write buffer and a few pages, not the image. Files are opened
 * (created if missing) on first use; bytes never written read as zeros, and
 * files grown by `truncate` stay sparse.
 *
 * Consecutive page writes are gathered into one `write` of up to
 * `bufferSize` bytes; reads see buffered writes. `finish()` flushes, fsyncs
 * and closes; `close()` closes without flushing (after an error).
 *
 * @example
 * ```ts
 * const store = new FilePageStore({ dir: 'out' })          // out/pc.ram.bin, …
 * await pipeline(input, new XbzrleDecodeStream({ store, emitPages: false }))
 * ```
 */
export class FilePageStore implements PageStore {
  private readonly pathOf: (block: string) => string;
  private readonly truncate: boolean;
  private readonly fsync: boolean;
  private readonly files = new Map<string, OpenFile>();
  private readonly buffer: Uint8Array;
  private runBlock: string | null = null;
  private runStart = 0;
  private runLength = 0;
  private closed = false;

  constructor(options: FilePageStoreOptions) {
    if (options === null || typeof options !== 'object') throw argTypeError('options', 'an object', options);
    const { dir, path } = options;
    if (path !== undefined && typeof path !== 'function') throw argTypeError('options.path', 'a function', path);
    if (path === undefined && typeof dir !== 'string') throw argTypeError('options.dir', 'a string (or give options.path)', dir);
    this.pathOf = path ?? ((block) => join(dir!, blockFileName(block)));
    this.truncate = options.truncate ?? true;
    this.fsync = options.fsync ?? true;
    const size = options.bufferSize ?? 1 << 20;
    if (!Number.isSafeInteger(size) || size < 1) throw argRangeError('options.bufferSize', 'a positive integer', size);
    this.buffer = new Uint8Array(size);
  }

  /** The blocks opened so far (`block`) and their image files (`path`). */
  openFiles(): BlockFile[] {
    return [...this.files].map(([block, f]) => ({ block, path: f.path }));
  }

  get(block: string, offset: number, into: Uint8Array): void | Promise<void> {
    const end = offset + into.length;
    if (block === this.runBlock && offset < this.runStart + this.runLength && end > this.runStart) {
      if (offset >= this.runStart && end <= this.runStart + this.runLength) {
        into.set(this.buffer.subarray(offset - this.runStart, end - this.runStart));
        return undefined;
      }
      return this.flush().then(() => this.readAt(block, offset, into));
    }
    return this.readAt(block, offset, into);
  }

  put(block: string, offset: number, data: Uint8Array): void | Promise<void> {
    if (data.length > this.buffer.length) return this.flush().then(() => this.writeAt(block, offset, data));
    const runEnd = this.runStart + this.runLength;
    if (block === this.runBlock && offset >= this.runStart && offset <= runEnd && offset + data.length - this.runStart <= this.buffer.length) {
      // Inside or right after the gathered run: copy and return at once.
      this.buffer.set(data, offset - this.runStart);
      this.runLength = Math.max(this.runLength, offset + data.length - this.runStart);
      return undefined;
    }
    if (this.runLength === 0) return this.startRun(block, offset, data);
    return this.flush().then(() => this.startRun(block, offset, data));
  }

  async declare(blocks: readonly RamBlock[]): Promise<void> {
    for (const b of blocks) {
      const handle = await this.handle(b.id);
      if (this.truncate) {
        await this.flush();
        await handle.truncate(b.length);
      }
    }
  }

  /** Writes out gathered pages. */
  async flush(): Promise<void> {
    if (this.runLength === 0 || this.runBlock === null) return;
    const block = this.runBlock;
    const start = this.runStart;
    const length = this.runLength;
    this.runLength = 0;
    this.runBlock = null;
    await this.writeAt(block, start, this.buffer.subarray(0, length));
  }

  /** Flushes, fsyncs (unless `fsync: false`) and closes every file. */
  async finish(): Promise<void> {
    await this.flush();
    for (const f of this.files.values()) {
      const handle = await f.handle;
      if (this.fsync) await handle.sync();
    }
    await this.close();
  }

  /** Closes every file without flushing gathered pages. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.runLength = 0;
    this.runBlock = null;
    const handles = [...this.files.values()].map((f) => f.handle.then((h) => h.close(), () => undefined));
    this.files.clear();
    await Promise.all(handles);
  }

  private startRun(block: string, offset: number, data: Uint8Array): void {
    this.runBlock = block;
    this.runStart = offset;
    this.runLength = data.length;
    this.buffer.set(data, 0);
  }

  private handle(block: string): Promise<FileHandle> {
    let f = this.files.get(block);
    if (f === undefined) {
      if (this.closed) return Promise.reject(new Error('FilePageStore is closed'));
      const path = this.pathOf(block);
      // 'r+' keeps an existing image; create it when missing.
      const handle = open(path, 'r+').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return open(path, 'w+');
        throw err;
      });
      f = { path, handle };
      this.files.set(block, f);
    }
    return f.handle;
  }

  private async readAt(block: string, offset: number, into: Uint8Array): Promise<void> {
    const handle = await this.handle(block);
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await handle.read(into, done, into.length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done < into.length) into.fill(0, done);
  }

  private async writeAt(block: string, offset: number, data: Uint8Array): Promise<void> {
    const handle = await this.handle(block);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await handle.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  }
}
