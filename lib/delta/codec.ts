/** The frame compressor interface (pure: implementations are injected). */
export interface FrameCompressor {
  /** Compresses one frame's records at `level`. */
  compress(raw: Uint8Array, level: number): Uint8Array;
  /** Decompresses a frame's payload that held `rawLength` bytes of records. */
  decompress(stored: Uint8Array, rawLength: number): Uint8Array;
}
