/**
 * The page scan of `diff`'s first pass in WebAssembly (lib/delta/wasm/scan.wat):
 * OLD's and NEW's pages compared and hashed (XXH64, seed 0) in place, in the
 * XBZRLE kernel's memory where `diff` reads the images, one call per step.
 * Available where the kernel runs on shared memory on a little-endian
 * machine (the hashes are read back as 32-bit halves); elsewhere callers use
 * {@link Hasher} and the kernel page by page, with the same results.
 */
import { getEngine, type WasmEngine } from '../codec/wasm/engine.js';
import { SCAN_WASM } from './wasm/scan-wasm.js';

/** Flag byte of a scanned page: NEW's page differs from OLD's. */
export const SCAN_CHANGED = 1;
/** Flag byte of a scanned page: OLD's page is all zero. */
export const SCAN_OLD_ZERO = 2;
/** Flag byte of a scanned page: NEW's page differs and is all zero. */
export const SCAN_NEW_ZERO = 4;

/** Bytes of a scan's output for `count` pages: OLD's hashes (8 bytes a page), NEW's (8), the flags (1). */
export function scanOutBytes(count: number): number {
  return count * 17;
}

interface ScanExports {
  scan(old: number, neu: number, count: number, ps: number, oldHashes: number, newHashes: number, flags: number, zeroHash: bigint): number;
  xxh64(ptr: number, len: number): bigint;
  equal(a: number, b: number, len: number): number;
  hash_pages(p: number, count: number, ps: number, out: number, flags: number, zeroHash: bigint): number;
}

/** The scan module over the kernel's memory. */
export interface PageScanner {
  readonly engine: WasmEngine;
  /** The compiled module (a worker instantiates it over the same memory). */
  readonly module: object;
  /**
   * Scans `count` pages of `ps` bytes, OLD's at address `old` and NEW's at
   * `neu`: writes OLD's page hashes at `oldHashes` (8 bytes each,
   * little-endian; `zeroHash` for an all-zero page), NEW's at `newHashes`
   * (OLD's when the pages are equal), a flag byte per page at `flags`
   * ({@link SCAN_CHANGED}, {@link SCAN_OLD_ZERO}, {@link SCAN_NEW_ZERO}), and
   * returns how many pages differ.
   */
  scan(old: number, neu: number, count: number, ps: number, oldHashes: number, newHashes: number, flags: number, zeroHash: bigint): number;
  /** XXH64 (seed 0) of `len` bytes at address `ptr` (`len` a positive multiple of 32). */
  xxh64(ptr: number, len: number): bigint;
  /** 1 when the `len` bytes at addresses `a` and `b` are equal, else 0 (`len` a positive multiple of 64). */
  equal(a: number, b: number, len: number): number;
  /**
   * Hashes `count` pages of `ps` bytes at address `p`: page i's hash at
   * `out` + 8 i (little-endian; `zeroHash` for an all-zero page, not hashed),
   * at `flags` + i 1 when it is all zero, else 0. Returns how many are zero.
   */
  hashPages(p: number, count: number, ps: number, out: number, flags: number, zeroHash: bigint): number;
}

/** The parts of the WebAssembly JS API used here (typed locally: no DOM types needed). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

const scanners = new WeakMap<WasmEngine, PageScanner | null>();
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let off = false;

/** @internal For tests: `false` makes {@link getScanner} return null (the page-by-page paths), `true` restores it. */
export function setScannerEnabled(on: boolean): void {
  off = !on;
}

/** The scanner over the kernel's memory, or null where there is none (see the file's comment). */
export function getScanner(): PageScanner | null {
  if (off) return null;
  const engine = getEngine();
  const WA = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (engine === null || !engine.shared || !littleEndian || WA === undefined) return null;
  const known = scanners.get(engine);
  if (known !== undefined) return known;
  let s: PageScanner | null;
  try {
    const bin = atob(SCAN_WASM);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const module = new WA.Module(bytes);
    const instance = new WA.Instance(module, { env: { memory: engine.memory } });
    const x = instance.exports as unknown as ScanExports;
    s = { engine, module, scan: x.scan, xxh64: (ptr, len) => BigInt.asUintN(64, x.xxh64(ptr, len)), equal: x.equal, hashPages: x.hash_pages };
  } catch {
    s = null;
  }
  scanners.set(engine, s);
  return s;
}
