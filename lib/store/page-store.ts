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
   * {@link PageStore.fill}: where `length` bytes at `offset` (one page) live
   * in the store's own memory, so records are applied in place,
   * synchronously, with no copies through `get`/`put`: the page is
   * `bytes[at … at + length)`. With `create` false, undefined for memory never
   * written (it reads as zeros). The location (which the store may reuse) is
   * valid until the next call on the store. {@link MemoryPageStore} and
   * {@link FilePageStore} have it.
   *
   * A store that keeps only some pages in memory returns null for a page it
   * cannot serve now (not in memory, or no room without writing pages out):
   * the caller then waits for {@link PageStore.prepare} and asks again, or
   * falls back to `get`/`put` when it still gets null.
   */
  locate?(block: string, offset: number, length: number, create: boolean): PageLocation | undefined | null;
  /**
   * Optional, with `locate` returning null: brings the page into the store's
   * memory (making room; reading its content unless `create`, for a page
   * about to be overwritten whole), so that the next `locate` of it serves it.
   */
  prepare?(block: string, offset: number, length: number, create: boolean): Promise<void>;
  /** Optional, with `locate`: bytes up to `end` of `block` were written in place. */
  written?(block: string, end: number): void;
  /**
   * Optional, with `locate`: sets `length` bytes from `offset` to `byte`
   * (called for memory `locate` found never written). May return a promise
   * when the store must write pages out first.
   */
  fill?(block: string, offset: number, length: number, byte: number): void | Promise<void>;
  /**
   * @internal Optional, with `locate`: a delta is about to be applied to memory
   * never written (`locate` returned undefined); throws to refuse it.
   */
  fresh?(block: string, offset: number): void;
  /**
   * @internal Optional: stores `data` as the page without copying it, when
   * the store can (else false: `put` it). The store keeps the view until
   * {@link PageStore.releaseBorrowed} or its next other call, so the caller
   * must call `releaseBorrowed` before `data` changes.
   */
  putBorrowed?(block: string, offset: number, data: Uint8Array): boolean;
  /** @internal Optional, with `putBorrowed`: done with the pages it took (written or copied now). */
  releaseBorrowed?(): void;
  /**
   * @internal Optional, with `locate`: bytes of XBZRLE deltas a decoder
   * given worker threads applies on its own thread before it starts them
   * (where the store's own work dominates, a few deltas do not pay for the
   * workers' start). Default 0: at once.
   */
  readonly parallelAfter?: number;
  /**
   * @internal Optional, with `locate`: worker threads will write into the
   * store's memory from now on (keep pages in the SIMD kernel's memory).
   */
  shareMemory?(): void;
}

/** Where a page lives in a store's memory (see {@link PageStore.locate}): `bytes[at…]`. */
export interface PageLocation {
  /** Memory holding the page (a larger region, such as a segment). */
  bytes: Uint8Array;
  /** Offset of the page's first byte in `bytes`. */
  at: number;
}

/** @internal A store with the in-place capability. */
export type InPlacePageStore = PageStore & Required<Pick<PageStore, 'locate' | 'written' | 'fill'>>;

/** @internal Whether `store` has the in-place capability (`locate`, `written`, `fill`). */
export function hasInPlaceAccess(store: PageStore | null): store is InPlacePageStore {
  return store !== null && typeof store.locate === 'function' && typeof store.written === 'function' && typeof store.fill === 'function';
}
