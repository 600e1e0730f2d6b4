/**
 * zstd for the frames: `@bokuweb/zstd-wasm`, zstd compiled to WebAssembly
 * (installs from the npm registry alone, no native build; Node 20's zlib
 * has no zstd).
 */
import * as zstd from '@bokuweb/zstd-wasm';
import type { FrameCompressor } from './codec.js';

let loading: Promise<FrameCompressor> | null = null;

/** The shared zstd compressor (instantiated once). */
export function loadZstd(): Promise<FrameCompressor> {
  loading ??= zstd.init().then(() => ({
    compress: (raw: Uint8Array, level: number) => zstd.compress(raw, level),
    decompress: (stored: Uint8Array, rawLength: number) => zstd.decompress(stored, { defaultHeapSize: rawLength }),
  }));
  return loading;
}
