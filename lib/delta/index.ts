/** The snapshot delta format (docs/delta-format.md): public surface. */
export { diffImages, patchImage, verifyDelta, type ImageSource, type DeltaOutput, type DeltaInput, type DiffImagesOptions, type PatchImageOptions, type VerifyDeltaOptions } from './node.js';
export { DeltaEncoder, type DeltaEncoderOptions, type DeltaEncoderIO, type DeltaStats } from './encoder.js';
export { DeltaApplier, type DeltaApplierOptions, type DeltaApplyIO, type NewStep } from './apply.js';
export { DeltaWriter, type DeltaWriterOptions } from './writer.js';
export { ByteQueue, DeltaReader, type DeltaReaderOptions } from './reader.js';
export { loadHasher, ImageDigest, type Hasher } from './hash.js';
export { loadZstd } from './zstd.js';
export type { FrameCompressor, FrameWorkers } from './codec.js';
export { DELTA_MAGIC, DELTA_VERSION, isDeltaMagic, type DeltaHeader, type DeltaTrailer } from './format.js';
