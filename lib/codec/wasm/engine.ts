import { KERNEL_PLAIN, KERNEL_SHARED, KERNEL_SHARED_HASH } from './kernel-wasm.js';
import { fillInto } from '../copy.js';

/** The parts of the WebAssembly JS API used here (typed locally: no DOM types needed). */
interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(pages: number): number;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/** @internal The kernel's exports (the engine's and the worker pool's view of them). */
export interface KernelExports {
  encode(prev: number, cur: number, slen: number, out: number, dlen: number): number;
  is_zero(ptr: number, len: number): number;
  apply(src: number, slen: number, dst: number): void;
  copy(dst: number, src: number, len: number): void;
  decode(src: number, slen: number, dst: number, dlen: number): number;
  step(prev: number, cur: number, out: number, n: number, update: number): number;
  step_run(prevs: number, cur: number, n: number, ps: number, update: number, rec: number, res: number, scratch: number, offLo: number, offHi: number, budget: number): number;
}

type PlainKernelFactory = (pages: number) => { memory: WasmMemory; kernel: KernelExports };

const WASM_PAGE = 65536;
/** Largest memory the kernel declares: 65536 wasm pages = 4 GiB. */
const MAX_WASM_PAGES = 65536;
/** Memory grows by at least this much at a time. */
const GROW_STEP = 16 << 20;
/**
 * Size of the staging memory for operands from ordinary buffers: two pages and
 * a delta of up to 64 KiB pages (2 × 64 KiB + 2 × 64 KiB + 8, and the gaps) fit.
 */
const STAGING_BYTES = 5 * WASM_PAGE;
/**
 * The staging area starts half way into a 4 KiB page. Sources are mostly page
 * aligned, and a copy whose destination sits a little above its source in
 * the 4 KiB grid stalls on false store-to-load dependencies ("4K aliasing"):
 * at offset 64 copies ran about a quarter slower than at 2048.
 */
const STAGING_OFFSET = 2048;

/**
 * Where the kernel encodes operands that live outside its memory: a fixed
 * area of plain (unshared) WebAssembly memory that is never grown, so its
 * view never detaches. Copies into plain memory are plain `memcpy`s; copies
 * into shared memory go through the runtime's slower relaxed-atomic copy,
 * which made staging in the shared memory cost more than the encoding.
 */
export interface Staging {
  /** A view of the staging memory (stable for the engine's lifetime). */
  readonly bytes: Uint8Array;
  /** First byte of the staging area in `bytes`. */
  readonly base: number;
  /** Bytes available from `base`. */
  readonly capacity: number;
  /** The encoder export of the kernel instance that works on `bytes`. */
  readonly encode: (prev: number, cur: number, slen: number, out: number, dlen: number) => number;
  /** The validating decoder export of the same instance. */
  readonly decode: (src: number, slen: number, dst: number, dlen: number) => number;
  /** The zero-test export of the same instance (1 when all zero). */
  readonly isZero: (ptr: number, len: number) => number;
}

/**
 * The WebAssembly SIMD kernel and its memory.
 *
 * With shared memory (Node, and browsers that allow SharedArrayBuffer) the
 * memory's views never detach when it grows, so long-lived buffers can live
 * in it: page cache arenas and `allocPages` buffers, which the kernel then
 * reads in place. With plain memory only a fixed scratch area is used and
 * operands are copied in (`shared` is false).
 */
export class WasmEngine {
  readonly memory: WasmMemory;
  /** True when the memory is shared: long-lived allocations are allowed. */
  readonly shared: boolean;
  /**
   * Buffers handed out by `allocPages` and not given back, by address (kept here so
   * every copy of the package sees them). The view itself, so that only the very
   * buffer returned frees the memory: a stale view of memory since handed out again
   * must not free the new owner's buffer.
   */
  private readonly pageAllocations = new Map<number, Uint8Array>();
  /** Memory each owner holds, by address: given back by `give`/`giveAll`, or when the owner is garbage collected. */
  private readonly owned = new WeakMap<object, Map<number, number>>();
  /** The one finalizer of kernel memory, for every kind of owner (caches, stores, kernels). */
  private readonly finalizer = new FinalizationRegistry<Map<number, number>>((regions) => {
    for (const [ptr, size] of regions) this.release(ptr, size);
  });
  private readonly kernel: KernelExports;
  private view: Uint8Array;
  private currentBuffer: ArrayBufferLike;
  private readonly sharedCtor: abstract new (...args: never[]) => unknown;
  /** Every `memory.buffer` generation: views of any of them point into this memory. */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /** Memory from here on was never handed out: it is still all zero (as the memory grew). */
  private highWater = 64;
  /** Free ranges [start, end), sorted, coalesced. */
  private readonly freeList: { start: number; end: number }[] = [];

  /** Makes a kernel instance over a new plain memory of a fixed size (for the staging area of a shared engine). */
  private readonly plainKernel: PlainKernelFactory | null;
  private stagingArea: Staging | null | undefined;

  constructor(memory: WasmMemory, kernel: KernelExports, shared: boolean, plainKernel: PlainKernelFactory | null = null) {
    this.plainKernel = plainKernel;
    this.memory = memory;
    this.kernel = kernel;
    this.shared = shared;
    this.view = new Uint8Array(memory.buffer);
    this.currentBuffer = memory.buffer;
    this.sharedCtor = memory.buffer.constructor as abstract new (...args: never[]) => unknown;
    this.buffers.add(memory.buffer);
    // Offset 0 stays unused so that 0 is never a valid allocation.
    this.freeList.push({ start: 64, end: memory.buffer.byteLength });
  }

  /**
   * A view of the whole memory as it is now. Only this engine grows the
   * memory (it is never handed to another thread), so the view is refreshed
   * in `grow()` rather than by reading `memory.buffer` on every call.
   */
  bytes(): Uint8Array {
    return this.view;
  }

  /**
   * The address of `u8` in this memory (its `byteOffset`), or -1 when it is
   * not a view of it. For the views the engine hands out (`KernelBytes`) it
   * is one property read; other arrays cost a `.buffer` read and a check of it.
   */
  addressOf(u8: Uint8Array): number {
    const addr = kernelAddress(u8);
    if (addr >= 0) return addr;
    return this.ownsBuffer(u8.buffer) ? u8.byteOffset : -1;
  }

  /** True when `b` is (a generation of) this memory's buffer. */
  ownsBuffer(b: ArrayBufferLike): boolean {
    // The latest buffer generation is by far the most common: skip the WeakSet for it.
    // (A field, not `this.view.buffer`: the getter costs as much as the rest of the check.)
    if (b === this.currentBuffer) return true;
    // A shared memory's buffers are SharedArrayBuffers: anything else is foreign.
    // (The constructor is taken from the memory: a page that is not cross-origin
    // isolated has no global SharedArrayBuffer.)
    if (this.shared && !(b instanceof this.sharedCtor)) return false;
    return this.buffers.has(b);
  }

  /**
   * Reserves `size` bytes aligned to `align` (a power of two) and returns the
   * address, or -1 when the memory cannot hold it. Contents are unspecified.
   */
  alloc(size: number, align = 64): number {
    size = Math.max(64, Math.ceil(size / 64) * 64);
    for (let attempt = 0; attempt < 2; attempt++) {
      for (let i = 0; i < this.freeList.length; i++) {
        const f = this.freeList[i]!;
        const start = Math.ceil(f.start / align) * align;
        if (start + size > f.end) continue;
        const pieces: { start: number; end: number }[] = [];
        if (start > f.start) pieces.push({ start: f.start, end: start });
        if (start + size < f.end) pieces.push({ start: start + size, end: f.end });
        this.freeList.splice(i, 1, ...pieces);
        if (start + size > this.highWater) this.highWater = start + size;
        return start;
      }
      if (attempt === 0 && !this.grow(size + align)) return -1;
    }
    return -1;
  }

  /**
   * Returns a range from {@link WasmEngine.alloc}. A range that is already
   * (partly) free is ignored: a double free must never hand the same memory
   * out twice.
   */
  release(ptr: number, size: number): void {
    size = Math.max(64, Math.ceil(size / 64) * 64);
    const range = { start: ptr, end: ptr + size };
    const list = this.freeList;
    let i = 0;
    while (i < list.length && list[i]!.start < range.start) i++;
    if ((i > 0 && list[i - 1]!.end > range.start) || (i < list.length && list[i]!.start < range.end)) return;
    list.splice(i, 0, range);
    // Coalesce with the neighbours.
    if (i + 1 < list.length && list[i]!.end === list[i + 1]!.start) {
      list[i]!.end = list[i + 1]!.end;
      list.splice(i + 1, 1);
    }
    if (i > 0 && list[i - 1]!.end === list[i]!.start) {
      list[i - 1]!.end = list[i]!.end;
      list.splice(i, 1);
    }
  }

  /**
   * Reserves `size` bytes aligned to `align` for `owner` and returns the address,
   * or -1 when the memory cannot hold it. The memory goes back with
   * {@link WasmEngine.give} / {@link WasmEngine.giveAll}, or when `owner` is
   * garbage collected without giving it back.
   */
  take(owner: object, size: number, align = 64, zero = false): number {
    const fresh = this.highWater;
    const ptr = zero ? this.allocZeroed(size, align) : this.alloc(size, align);
    this.takenDirty = ptr < 0 ? 0 : Math.max(0, Math.min(size, fresh - ptr));
    if (ptr < 0) return -1;
    let regions = this.owned.get(owner);
    if (regions === undefined) {
      regions = new Map();
      this.owned.set(owner, regions);
      this.finalizer.register(owner, regions, owner);
    }
    regions.set(ptr, size);
    return ptr;
  }

  /**
   * After {@link WasmEngine.take}: how many bytes from the address it returned
   * were handed out before (their contents unspecified unless it cleared
   * them); the bytes after them were never touched, so they are zero.
   */
  takenDirty = 0;

  /**
   * {@link WasmEngine.alloc}, with the contents all zero. Memory never handed out
   * before is zero already and is left untouched (first touches are page faults:
   * ~20 µs a page on some virtual machines); only reused memory is cleared.
   */
  allocZeroed(size: number, align = 64): number {
    const fresh = this.highWater;
    const ptr = this.alloc(size, align);
    if (ptr >= 0 && ptr < fresh) fillInto(this.bytes(), 0, ptr, Math.min(ptr + size, fresh));
    return ptr;
  }

  /** Gives back the region at `ptr` that `owner` took (nothing when it holds none there). */
  give(owner: object, ptr: number): void {
    const regions = this.owned.get(owner);
    const size = regions?.get(ptr);
    if (size === undefined) return;
    regions!.delete(ptr);
    this.release(ptr, size);
  }

  /** Gives back every region `owner` took. */
  giveAll(owner: object): void {
    const regions = this.owned.get(owner);
    if (regions === undefined) return;
    for (const [ptr, size] of regions) this.release(ptr, size);
    regions.clear();
  }

  /** Remembers an `allocPages` buffer (only that very view can give its memory back). */
  adoptPages(ptr: number, pages: Uint8Array): void {
    this.pageAllocations.set(ptr, pages);
  }

  /** Gives back an `allocPages` buffer; false when `pages` is not one that is still out. */
  returnPages(pages: Uint8Array, at: number): boolean {
    if (this.pageAllocations.get(at) !== pages) return false;
    this.pageAllocations.delete(at);
    this.release(at, pages.length);
    return true;
  }

  /** Bytes of memory in use by allocations. */
  get allocated(): number {
    let free = 0;
    for (const f of this.freeList) free += f.end - f.start;
    return this.memory.buffer.byteLength - 64 - free;
  }

  encode(prev: number, cur: number, slen: number, out: number, dlen: number): number {
    return this.kernel.encode(prev, cur, slen, out, dlen);
  }

  isZero(ptr: number, len: number): boolean {
    return this.kernel.is_zero(ptr, len) !== 0;
  }

  /** Copies `len` bytes inside the memory (no allocation). */
  copy(dst: number, src: number, len: number): void {
    this.kernel.copy(dst, src, len);
  }

  /** The fused per-page step of the sender (see kernel.wat): `prev` 0 for no cached copy; -3 zero, -4 no cached copy, else the encode result. */
  step(prev: number, cur: number, out: number, n: number, update: boolean): number {
    return this.kernel.step(prev, cur, out, n, update ? 1 : 0);
  }

  /**
   * The kernel's `step_run` (see kernel.wat): `n` consecutive pages from
   * `cur` stepped against the cached copies whose addresses are the Int32s at
   * `prevs`, results to the Int32s at `res`, records (CONTINUE, no name)
   * from `rec`, deltas made at `scratch`, page offsets from `offset`; with
   * `budget` ≥ 0, stops after the first page whose record brings the bytes
   * written to `budget` or more. Returns the bytes of records written.
   */
  stepRun(prevs: number, cur: number, n: number, ps: number, update: boolean, rec: number, res: number, scratch: number, offset: number, budget = -1): number {
    return this.kernel.step_run(prevs, cur, n, ps, update ? 1 : 0, rec, res, scratch, offset % 0x100000000, Math.floor(offset / 0x100000000), budget);
  }

  /** A view of `size` bytes at `ptr` that carries its address (handed to callers). */
  region(ptr: number, size: number): Uint8Array {
    return new KernelBytes(this.currentBuffer as ArrayBuffer, ptr, size);
  }

  /**
   * QEMU's decoder, validating first: applies `slen` delta bytes at `src` to
   * the `dlen`-byte page at `dst` and returns the end of the last run, or
   * -1 - (position of the failing element) without writing anything.
   */
  decode(src: number, slen: number, dst: number, dlen: number): number {
    return this.kernel.decode(src, slen, dst, dlen);
  }

  /**
   * A scratch area of at least `size` bytes for one synchronous operation
   * (its contents do not survive the next call). -1 when memory is short.
   */
  scratch(size: number): number {
    if (size > this.scratchSize) {
      if (this.scratchPtr >= 0) this.release(this.scratchPtr, this.scratchSize);
      const want = Math.max(size, 64 * 1024);
      this.scratchPtr = this.alloc(want);
      this.scratchSize = this.scratchPtr < 0 ? 0 : want;
    }
    return this.scratchPtr;
  }
  private scratchPtr = -1;
  private scratchSize = 0;

  /**
   * The staging area for operands in ordinary buffers, made on first use, or
   * null when none can be made (callers then use {@link WasmEngine.scratch}).
   * A shared engine stages in a second kernel instance over its own small
   * plain memory; a plain engine (never grown) in an area of its own memory.
   */
  staging(): Staging | null {
    if (this.stagingArea !== undefined) return this.stagingArea;
    let area: Staging | null = null;
    try {
      if (this.shared && this.plainKernel !== null) {
        const { memory, kernel } = this.plainKernel(STAGING_BYTES / WASM_PAGE);
        area = { bytes: new Uint8Array(memory.buffer), base: STAGING_OFFSET, capacity: STAGING_BYTES - STAGING_OFFSET, encode: kernel.encode, decode: kernel.decode, isZero: kernel.is_zero };
      } else if (!this.shared) {
        // Its memory is small and fixed: a smaller area (two 16 KiB pages and any
        // delta; larger pages go through the scratch path).
        const start = this.alloc(2 * WASM_PAGE, 4096);
        if (start >= 0) area = { bytes: this.view, base: start + STAGING_OFFSET, capacity: 2 * WASM_PAGE - STAGING_OFFSET, encode: this.kernel.encode, decode: this.kernel.decode, isZero: this.kernel.is_zero };
      }
    } catch {
      area = null;
    }
    return (this.stagingArea = area);
  }

  /** Applies a delta the kernel just produced (so known valid) to the page at `dst`. */
  apply(src: number, len: number, dst: number): void {
    this.kernel.apply(src, len, dst);
  }

  private grow(need: number): boolean {
    if (!this.shared) return false; // plain memory would detach views: never grown
    const current = this.memory.buffer.byteLength;
    const want = Math.ceil(Math.max(need, GROW_STEP, current / 4) / WASM_PAGE);
    const pages = Math.min(want, MAX_WASM_PAGES - current / WASM_PAGE);
    if (pages * WASM_PAGE < need) return false;
    try {
      this.memory.grow(pages);
    } catch {
      return false;
    }
    const buffer = this.memory.buffer;
    this.view = new Uint8Array(buffer);
    this.currentBuffer = buffer;
    this.buffers.add(buffer);
    this.release(current, buffer.byteLength - current);
    return true;
  }
}

/**
 * Views of the kernel's memory handed to callers (allocPages, cache arenas,
 * store segments) are of this class. Each carries its address in the kernel's
 * memory under {@link KERNEL_ADDRESS}, so "is this buffer in the kernel's
 * memory, and where?" is one property read ({@link kernelAddress}) instead of
 * reading `.buffer` and `.byteOffset`, which cost as much as a small page
 * encode. Their `subarray`s keep the class. The engine's own whole-memory
 * view stays a plain `Uint8Array`, whose `subarray` is faster. Not exported
 * from the package.
 */
export class KernelBytes extends Uint8Array {
  declare readonly [KERNEL_ADDRESS]: number;

  constructor(buffer: ArrayBufferLike | number, byteOffset?: number, length?: number) {
    super(buffer as ArrayBuffer, byteOffset, length);
    // The converted offset, not the argument (which may be a string or anything else
    // ToIndex takes); -1 for an instance that is not over the kernel's memory (one
    // made through `view.constructor` by user code): the engine then treats it as foreign.
    const addr = typeof buffer === 'object' && buffer !== null && getEngine()?.ownsBuffer(buffer) === true ? this.byteOffset : -1;
    // Not enumerable: Object.assign and spreads never carry it to another array.
    Object.defineProperty(this, KERNEL_ADDRESS, { value: addr });
  }

  // Copies are ordinary arrays: only views (`subarray`) stay in the kernel's memory.
  // Without this, `slice()` and friends would make KernelBytes over a new buffer
  // that `instanceof` would take for kernel memory.
  override slice(start?: number, end?: number): Uint8Array<ArrayBuffer> {
    return plain(this).slice(start, end);
  }

  override map(fn: (value: number, index: number, array: this) => number, thisArg?: unknown): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = fn.call(thisArg, this[i]!, i, this);
    return out;
  }

  override filter(fn: (value: number, index: number, array: this) => unknown, thisArg?: unknown): Uint8Array<ArrayBuffer> {
    const kept: number[] = [];
    for (let i = 0; i < this.length; i++) if (fn.call(thisArg, this[i]!, i, this)) kept.push(this[i]!);
    return Uint8Array.from(kept);
  }
}

function plain(u8: Uint8Array): Uint8Array {
  return new Uint8Array(u8.buffer, u8.byteOffset, u8.length);
}

let engine: WasmEngine | null | undefined;

/**
 * Version of the engine's JavaScript side (its methods, its allocator, the
 * bookkeeping other modules keep on it). Bump it with any change there:
 * copies of the package share an engine only when both this and the kernel
 * build match.
 */
const ENGINE_API = 5;

/**
 * The engine is one per JavaScript realm, kernel build and engine API, even
 * when the package is bundled more than once (`xbzrle` and `xbzrle/web` are
 * separate bundles, and ESM and CommonJS are separate builds): caches and
 * buffers made by one copy then work with the other.
 */
const ENGINE_BUILD = `v${ENGINE_API}.${KERNEL_SHARED_HASH}`;
const ENGINE_KEY = Symbol.for(`xbzrle.engine.${ENGINE_BUILD}`);

/**
 * The property where a kernel view ({@link KernelBytes}) keeps its address.
 * Keyed like the engine, so every copy of the package that shares the engine
 * recognises the others' views. A property read, not `instanceof`: in the
 * codec's entry points an `instanceof` on an ordinary buffer measured ~30 ns
 * (V8 11), this read ~1 ns.
 */
const KERNEL_ADDRESS: unique symbol = Symbol.for(`xbzrle.kernel-address.${ENGINE_BUILD}`) as never;

type Branded = { readonly [KERNEL_ADDRESS]?: number };

/**
 * The address of `u8` in the kernel's memory when it is one of the views the
 * engine hands out, else -1 (an ordinary buffer, or a plain view the caller
 * made over the kernel's memory: {@link WasmEngine.addressOf} finds those).
 */
export function kernelAddress(u8: Uint8Array): number {
  const addr = (u8 as Branded)[KERNEL_ADDRESS];
  return addr === undefined ? -1 : addr;
}

function base64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function disabled(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.['XBZRLE_WASM'] === '0';
}

/**
 * The kernel, instantiated on first use, or null when WebAssembly SIMD is not
 * available (or `XBZRLE_WASM=0` is set): callers then use the TypeScript path.
 */
export function getEngine(): WasmEngine | null {
  if (engine !== undefined) return engine;
  const registry = globalThis as { [ENGINE_KEY]?: WasmEngine | null };
  if (registry[ENGINE_KEY] !== undefined) return (engine = registry[ENGINE_KEY]!);
  engine = createEngine();
  registry[ENGINE_KEY] = engine;
  return engine;
}

function createEngine(): WasmEngine | null {
  let engine: WasmEngine | null = null;
  const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (disabled() || WA === undefined) return null;
  try {
    // Shared memory only where SharedArrayBuffer is usable (in a browser: a cross-origin isolated page).
    if (typeof SharedArrayBuffer === 'undefined' || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
      throw new Error('no shared memory here');
    }
    const memory = new WA.Memory({ initial: 1, maximum: MAX_WASM_PAGES, shared: true });
    const instance = new WA.Instance(new WA.Module(base64(KERNEL_SHARED)), { env: { memory } });
    const plainKernel: PlainKernelFactory = (pages) => {
      const plainMemory = new WA.Memory({ initial: pages, maximum: pages });
      const plain = new WA.Instance(new WA.Module(base64(KERNEL_PLAIN)), { env: { memory: plainMemory } });
      return { memory: plainMemory, kernel: plain.exports as unknown as KernelExports };
    };
    engine = new WasmEngine(memory, instance.exports as unknown as KernelExports, true, plainKernel);
  } catch {
    try {
      // No shared memory here (a browser without cross-origin isolation): plain memory, fixed size.
      const memory = new WA.Memory({ initial: 16, maximum: MAX_WASM_PAGES });
      const instance = new WA.Instance(new WA.Module(base64(KERNEL_PLAIN)), { env: { memory } });
      engine = new WasmEngine(memory, instance.exports as unknown as KernelExports, false);
    } catch {
      engine = null; // no WebAssembly SIMD
    }
  }
  return engine;
}

/** @internal For tests: forget the engine (the next getEngine() makes a new one). */
export function resetEngineForTests(): void {
  engine = undefined;
  delete (globalThis as { [ENGINE_KEY]?: WasmEngine | null })[ENGINE_KEY];
}
