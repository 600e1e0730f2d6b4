/** The frame compressor interface (pure: implementations are injected). */
export interface FrameCompressor {
  /** Compresses one frame's records at `level`. */
  compress(raw: Uint8Array, level: number): Uint8Array;
  /** Decompresses a frame's payload that held `rawLength` bytes of records. */
  decompress(stored: Uint8Array, rawLength: number): Uint8Array;
}

/**
 * Frames compressed and decompressed off the calling thread (worker
 * threads): the same bytes as {@link FrameCompressor}'s, and the same error
 * messages, asynchronously. Callers keep the order of frames themselves and
 * bound how many they have in flight.
 */
export interface FrameWorkers {
  /** Threads in all: the caller and the workers. */
  readonly threads: number;
  /** {@link FrameCompressor.compress} on a worker (`raw` must stay as it is until the promise settles). */
  compress(raw: Uint8Array, level: number): Promise<Uint8Array>;
  /** {@link FrameCompressor.decompress} on a worker (`stored` must stay as it is until the promise settles). */
  decompress(stored: Uint8Array, rawLength: number): Promise<Uint8Array>;
}
