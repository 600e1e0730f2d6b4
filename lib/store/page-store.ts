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
  /**
   * Optional capability, with {@link PageStore.written} and
   * {@link PageStore.fill}: the store's own memory for `length` bytes at
   * `offset` (one page), so records are applied in place, synchronously, with
   * no copies through `get`/`put`. With `create` false, undefined for memory
   * never written (it reads as zeros). The view is valid until the next call
   * on the store. {@link MemoryPageStore} has it.
   */
  view?(block: string, offset: number, length: number, create: boolean): Uint8Array | undefined;
  /** Optional, with `view`: bytes up to `end` of `block` were written through a view. */
  written?(block: string, end: number): void;
  /** Optional, with `view`: sets `length` bytes from `offset` to `byte`. */
  fill?(block: string, offset: number, length: number, byte: number): void;
}

/** @internal A store with the in-place capability. */
export type InPlacePageStore = PageStore & Required<Pick<PageStore, 'view' | 'written' | 'fill'>>;

/** @internal Whether `store` has the in-place capability (`view`, `written`, `fill`). */
export function hasInPlaceAccess(store: PageStore | null): store is InPlacePageStore {
  return store !== null && typeof store.view === 'function' && typeof store.written === 'function' && typeof store.fill === 'function';
}
