/**
 * zstd for the frames: `@bokuweb/zstd-wasm`, zstd compiled to WebAssembly
 * (installs from the npm registry alone, no native build; Node 20's zlib
 * has no zstd).
 */
import type { FrameCompressor } from './codec.js';

let loading: Promise<FrameCompressor> | null = null;

/**
 * The shared zstd compressor (loaded and instantiated once, on first use: a
 * command that meets no compressed frame — a plain QEMU stream's `stat`,
 * `decode`, `extract` — never loads its seven CommonJS files and 250 KB of
 * WebAssembly).
 */
export function loadZstd(): Promise<FrameCompressor> {
  loading ??= import('@bokuweb/zstd-wasm').then(async (zstd) => {
    await zstd.init();
    return {
      compress: (raw: Uint8Array, level: number) => zstd.compress(raw, level),
      decompress: (stored: Uint8Array, rawLength: number) => zstd.decompress(stored, { defaultHeapSize: rawLength }),
    };
  });
  return loading;
}
