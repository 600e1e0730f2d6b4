import type { RamBlock } from '../format/record-writer.js';

/**
 * Where a decoder keeps guest memory: the latest content of every page, by
 * block and offset. Methods may return a promise (file- or network-backed
 * stores); the decoder waits for it before reading the next record.
 *
 * A page that was never written reads as zeros, as guest RAM does.
 */
export interface PageStore {
  /** Copies the current content of the page at (`block`, `offset`) into `into` (`into.length` bytes). */
  get(block: string, offset: number, into: Uint8Array): void | Promise<void>;
  /**
   * Stores `data` as the page at (`block`, `offset`). `data` stays valid until
   * the call returns or, when it returns a promise, until that settles: copy it
   * to keep it longer.
   */
  put(block: string, offset: number, data: Uint8Array): void | Promise<void>;
  /** Optional: the block list of a MEM_SIZE record, before any page of it arrives. */
  declare?(blocks: readonly RamBlock[]): void | Promise<void>;
  /** Optional: the stream ended successfully; flush whatever is buffered. */
  finish?(): void | Promise<void>;
}
