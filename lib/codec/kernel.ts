import { applyChecked } from './decode.js';
import { encodeRange } from './encode.js';
import { getEngine, type WasmEngine } from './wasm/engine.js';
import { isZeroRange } from './zero.js';

/**
 * What the kernel needs of a page cache (`PageCache` has it): its arena, where
 * the arena lives in kernel memory (`arenaPtr < 0`: elsewhere), and a way to
 * store a whole page in a slot. Declared here so the codec depends on nothing above it.
 */
export interface KernelArena {
  readonly arena: Uint8Array;
  readonly arenaPtr: number;
  readonly arenaEngine: WasmEngine | null;
  store(slot: number, src: Uint8Array, srcOff: number): void;
  /** Notes that the kernel wrote into `slot` (the arena keeps track of slots known to be zero). */
  markWritten(slot: number): void;
}

/** Result of {@link PageKernel.encode} for a run QEMU cannot encode (it aborts). */
export const UNENCODABLE = -2;
/** Result of {@link PageKernel.step}: the page is all zero. */
export const STEP_ZERO = -3;
/** Result of {@link PageKernel.step}: not zero, and there is no cached copy. */
export const STEP_MISS = -4;

/**
 * Encodes pages of one size with the fastest path available: the WebAssembly
 * SIMD kernel when the runtime has it, else the TypeScript encoder. Operands
 * that already live in the kernel's memory (page cache arenas, `allocPages`
 * buffers, staged input) are read in place; others are copied in first.
 *
 * After {@link PageKernel.stage} the staged pages are at `src[srcOff…]`;
 * after {@link PageKernel.encode} the delta is at `delta[deltaOff…]`.
 * Both stay valid until the next call.
 */
export class PageKernel {
  readonly pageSize: number;
  /** The SIMD engine, or null on the TypeScript path. */
  readonly engine: WasmEngine | null;
  /** Pages staged at a time. */
  readonly stagePages: number;
  src: Uint8Array = new Uint8Array(0);
  srcOff = 0;
  delta: Uint8Array;
  deltaOff = 0;

  private readonly stagePtr: number;
  private readonly prevPtr: number;
  private readonly curPtr: number;
  private readonly outPtr: number;
  private readonly tsOut: Uint8Array;
  private snapshot: Uint8Array | null = null;
  private disposed = false;

  constructor(pageSize: number, stagePages = 64) {
    this.pageSize = pageSize;
    this.stagePages = stagePages;
    let engine = getEngine();
    let base = -1;
    if (engine !== null) {
      // Staging area, then one page each for a copied-in old page, a copied-in new page, the delta.
      // (Given back by dispose(), or when the kernel is garbage collected.)
      base = engine.take(this, (stagePages + 3) * pageSize, 64);
      if (base < 0) engine = null;
    }
    this.engine = engine;
    this.stagePtr = base;
    this.prevPtr = base + stagePages * pageSize;
    this.curPtr = base + (stagePages + 1) * pageSize;
    this.outPtr = base + (stagePages + 2) * pageSize;
    this.tsOut = engine === null ? new Uint8Array(pageSize) : new Uint8Array(0);
    this.delta = this.tsOut;
  }

  /**
   * Gives the kernel's memory back (once; later calls do nothing). The kernel
   * must not be used afterwards. A kernel dropped without this (an abandoned
   * stream) gives it back when garbage collected.
   */
  dispose(): void {
    if (this.engine !== null && this.stagePtr >= 0 && !this.disposed) {
      this.disposed = true;
      this.engine.give(this, this.stagePtr);
    }
  }

  /**
   * Makes `count` (≤ stagePages) pages of `data` from `at` ready for the
   * kernel: `src`/`srcOff` then point at them. Data in the kernel's memory is
   * used in place; other data is copied into the staging area, which also
   * snapshots memory another thread may be changing (a SharedArrayBuffer).
   */
  stage(data: Uint8Array, at: number, count: number): void {
    const bytes = count * this.pageSize;
    const engine = this.engine;
    if (engine !== null) {
      const addr = engine.addressOf(data);
      if (addr >= 0) {
        this.src = engine.bytes();
        this.srcOff = addr + at;
        return;
      }
      const mem = engine.bytes();
      mem.set(data.subarray(at, at + bytes), this.stagePtr);
      this.src = mem;
      this.srcOff = this.stagePtr;
      return;
    }
    if (typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer) {
      if (this.snapshot === null || this.snapshot.length < bytes) this.snapshot = new Uint8Array(this.stagePages * this.pageSize);
      this.snapshot.set(data.subarray(at, at + bytes));
      this.src = this.snapshot;
      this.srcOff = 0;
      return;
    }
    this.src = data;
    this.srcOff = at;
  }

  /** True when the page at `src[off]` is all zero. */
  isZero(src: Uint8Array, off: number): boolean {
    const engine = this.engine;
    if (engine !== null) {
      // `src` is usually the memory view itself (staged data): no lookup needed.
      if (src === engine.bytes()) return engine.isZero(off, this.pageSize);
      const at = engine.addressOf(src);
      if (at >= 0) return engine.isZero(at + off, this.pageSize);
    }
    return isZeroRange(src, off, this.pageSize);
  }

  /**
   * Encodes the page at `cur[curOff]` against the copy cached in `slot` of
   * `cache`, reading the cache arena in place when it lives in the kernel's
   * memory. Returns as {@link PageKernel.encode}.
   */
  encodeCached(cache: KernelArena, slot: number, cur: Uint8Array, curOff: number): number {
    const engine = this.engine;
    if (engine === null || cache.arenaPtr < 0 || cache.arenaEngine !== engine || cur !== engine.bytes()) return this.encode(cache.arena, slot * this.pageSize, cur, curOff);
    const ps = this.pageSize;
    const len = engine.encode(cache.arenaPtr + slot * ps, curOff, ps, this.outPtr, ps);
    this.delta = cur;
    this.deltaOff = this.outPtr;
    return len;
  }

  /**
   * One page of the sender's decision, with one kernel call on the SIMD path:
   * {@link STEP_ZERO} when the page at `cur[curOff]` is all zero; else
   * {@link STEP_MISS} when `slot` is -1; else the result of encoding it
   * against the cached copy in `slot` (delta in `delta[deltaOff…]`). With
   * `update`, the cached copy then becomes the page sent (the delta applied,
   * or the page copied in on overflow).
   */
  step(cache: KernelArena, slot: number, cur: Uint8Array, curOff: number, update: boolean): number {
    const engine = this.engine;
    const ps = this.pageSize;
    if (engine !== null && cur === engine.bytes() && cache.arenaPtr >= 0 && cache.arenaEngine === engine) {
      if (update && slot >= 0) cache.markWritten(slot); // the step may write the cached copy
      const len = engine.step(slot < 0 ? 0 : cache.arenaPtr + slot * ps, curOff, this.outPtr, ps, update);
      this.delta = cur;
      this.deltaOff = this.outPtr;
      return len;
    }
    if (this.isZero(cur, curOff)) return STEP_ZERO;
    if (slot < 0) return STEP_MISS;
    const len = this.encodeCached(cache, slot, cur, curOff);
    if (update) {
      if (len > 0) this.applyToCache(cache, slot, len);
      else if (len < 0) cache.store(slot, cur, curOff);
    }
    return len;
  }

  /**
   * {@link PageKernel.step} against a previous copy the caller holds instead
   * of a cache slot (`prev` null: none), nothing updated: {@link STEP_ZERO},
   * {@link STEP_MISS}, or the result of encoding the page at `cur[curOff]`
   * against `prev[prevOff]` (delta in `delta[deltaOff…]`). One kernel call
   * when both are in the kernel's memory.
   */
  stepOn(prev: Uint8Array | null, prevOff: number, cur: Uint8Array, curOff: number): number {
    const engine = this.engine;
    if (engine !== null && cur === engine.bytes()) {
      // Address 0 means "no copy" to the kernel (nothing is allocated there).
      const base = prev === null ? 0 : prev === cur ? 0 : engine.addressOf(prev);
      if (base >= 0) {
        const len = engine.step(prev === null ? 0 : base + prevOff, curOff, this.outPtr, this.pageSize, false);
        this.delta = cur;
        this.deltaOff = this.outPtr;
        return len;
      }
    }
    if (this.isZero(cur, curOff)) return STEP_ZERO;
    if (prev === null) return STEP_MISS;
    return this.encode(prev, prevOff, cur, curOff);
  }

  /**
   * Brings `slot` of `cache` up to date with the delta of length `len` just
   * produced by {@link PageKernel.encodeCached}: only the changed runs are
   * written, not the whole page.
   */
  applyToCache(cache: KernelArena, slot: number, len: number): void {
    const engine = this.engine;
    const at = slot * this.pageSize;
    cache.markWritten(slot);
    if (engine !== null && cache.arenaPtr >= 0 && cache.arenaEngine === engine && this.delta === engine.bytes()) engine.apply(this.deltaOff, len, cache.arenaPtr + at);
    else applyChecked(this.delta, this.deltaOff, len, cache.arena, at);
  }

  /**
   * Encodes the page at `cur[curOff]` against `prev[prevOff]` with
   * `dlen = pageSize`, as QEMU's sender does. Returns the delta length, 0
   * (unchanged), -1 (overflow) or {@link UNENCODABLE}.
   */
  encode(prev: Uint8Array, prevOff: number, cur: Uint8Array, curOff: number): number {
    const ps = this.pageSize;
    const engine = this.engine;
    if (engine === null) {
      this.delta = this.tsOut;
      this.deltaOff = 0;
      try {
        return encodeRange(prev, prevOff, cur, curOff, ps, this.tsOut, 0, ps);
      } catch {
        return UNENCODABLE;
      }
    }
    let p = engine.addressOf(prev);
    if (p >= 0) p += prevOff;
    else {
      engine.bytes().set(prev.subarray(prevOff, prevOff + ps), this.prevPtr);
      p = this.prevPtr;
    }
    let c = engine.addressOf(cur);
    if (c >= 0) c += curOff;
    else {
      engine.bytes().set(cur.subarray(curOff, curOff + ps), this.curPtr);
      c = this.curPtr;
    }
    const len = engine.encode(p, c, ps, this.outPtr, ps);
    this.delta = engine.bytes();
    this.deltaOff = this.outPtr;
    return len;
  }
}
