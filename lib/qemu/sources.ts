import type { FileHandle } from 'node:fs/promises';
import type { RandomAccessInput } from './byte-source.js';

/** Bytes per sequential read of a file. */
const FILE_CHUNK = 1 << 20;

/** A regular file read through a `FileHandle`: sequential chunks from a movable position, and positioned reads. */
export class FileInput implements RandomAccessInput {
  private position = 0;

  constructor(
    private readonly handle: FileHandle,
    /** The file's size when opened. */
    readonly size: number,
  ) {}

  seek(position: number): void {
    this.position = position;
  }

  async readAt(into: Uint8Array, position: number): Promise<number> {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.handle.read(into, done, into.length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        const chunk = new Uint8Array(FILE_CHUNK);
        const n = await this.readAt(chunk, this.position);
        if (n === 0) return { done: true, value: undefined };
        this.position += n;
        return { done: false, value: chunk.subarray(0, n) };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => ({ done: true, value: undefined }),
    };
  }
}

/** Bytes in memory as a random access input (chunks are views, nothing is copied). */
export class BytesInput implements RandomAccessInput {
  private position = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get size(): number {
    return this.bytes.length;
  }

  seek(position: number): void {
    this.position = position;
  }

  async readAt(into: Uint8Array, position: number): Promise<number> {
    const part = this.bytes.subarray(Math.min(position, this.bytes.length), Math.min(position + into.length, this.bytes.length));
    into.set(part);
    return part.length;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        if (this.position >= this.bytes.length) return { done: true, value: undefined };
        const chunk = this.bytes.subarray(this.position);
        this.position = this.bytes.length;
        return { done: false, value: chunk };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => ({ done: true, value: undefined }),
    };
  }
}
