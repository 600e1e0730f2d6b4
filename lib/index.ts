// The public surface of xbzrle. Nothing but re-exports.
export { XbzrleError, type XbzrleErrorCode, type XbzrleErrorOptions } from './errors.js';

export { encodeXbzrle } from './codec/encode.js';
export { decodeXbzrle } from './codec/decode.js';
export { isZeroPage } from './codec/zero.js';
export { allocPages, freePages } from './codec/pages.js';

export {
  PageCache,
  CACHED_PAGE_LIFETIME,
  DEFAULT_CACHE_SIZE,
  type PageCacheOptions,
  type BlockRange,
} from './cache/page-cache.js';

export { RAM_SAVE_FLAG, ENCODING_FLAG_XBZRLE, MIN_PAGE_SIZE, MAX_PAGE_SIZE, MAX_IDSTR_LENGTH } from './format/flags.js';
export { RecordWriter, type RamBlock, type RecordWriterOptions, type SlabAllocator } from './format/record-writer.js';
export { RamRecordParser, RamRecord, DEFAULT_MAX_BLOCKS, DEFAULT_MAX_IMAGE_SIZE, type RamRecordKind, type RamRecordParserOptions } from './format/record-parser.js';

export type { PageStore, PageLocation } from './store/page-store.js';
export { MemoryPageStore, DEFAULT_MAX_MEMORY, type MemoryPageStoreOptions } from './store/memory-page-store.js';
export { FilePageStore, blockFileName, type FilePageStoreOptions, type BlockFile } from './store/file-page-store.js';
export { RamLoader, type RamLoaderOptions, type PageSink } from './store/ram-loader.js';

export { RATE_PERIOD_MS, XbzrleStats, type RateMode, type RecordCounts, type XbzrleStatsJSON, type XbzrleStatsOptions } from './stats.js';
export {
  XbzrleEncodeStream,
  createXbzrleEncodeStream,
  type XbzrleEncodeStreamOptions,
  type PageRecord,
  type SyncOptions,
} from './stream/encode-stream.js';
export {
  XbzrleDecodeStream,
  createXbzrleDecodeStream,
  type XbzrleDecodeStreamOptions,
  type DecodedPage,
  type DecodedPageKind,
} from './stream/decode-stream.js';

export {
  readQemuMigration,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_SECTION,
  type MigrationInput,
  type ReadQemuMigrationOptions,
  type QemuMigrationInfo,
  type MigrationStop,
  type RamSectionCounts,
} from './qemu/migration-file.js';
export { encodeRounds, decodeRecords, type EncodeRoundsOptions, type RoundItem, type WithStats, type StatsHolder } from './stream/iterators.js';
export type { EncodeRoundsOption } from './core/generators.js';
export {
  diffImages,
  patchImage,
  verifyDelta,
  DeltaEncoder,
  DeltaApplier,
  DeltaWriter,
  DeltaReader,
  ByteQueue,
  ImageDigest,
  loadHasher,
  loadZstd,
  isDeltaMagic,
  DELTA_MAGIC,
  DELTA_VERSION,
  type ImageSource,
  type DeltaOutput,
  type DeltaInput,
  type DiffImagesOptions,
  type PatchImageOptions,
  type VerifyDeltaOptions,
  type DeltaEncoderOptions,
  type DeltaEncoderIO,
  type DeltaStats,
  type DeltaApplierOptions,
  type DeltaApplyIO,
  type NewStep,
  type DeltaWriterOptions,
  type Hasher,
  type FrameCompressor,
  type FrameWorkers,
  type DeltaReaderOptions,
  type DeltaHeader,
  type DeltaTrailer,
} from './delta/index.js';

// Issue 16: QEMU 8–10 streams, mapped-ram files, target checks.
export { type TargetBlock } from './format/record-parser.js';
export { type QueryMigrateJSON } from './stats.js';
export { guessQemuVersion, machineTypeVersion, QEMU_CHANGES, type MachineVersion, type QemuVersion, type StreamFeatures } from './qemu/version.js';
export { copyMappedRamBlock, MAPPED_RAM_HEADER_SIZE, MAPPED_RAM_VERSION, type MappedRamBlock } from './qemu/mapped-ram.js';

// Issue 16 part 5: `xbzrle report`, a migration or delta stream as one self-contained HTML page.
export {
  buildMigrationReport,
  renderReportHtml,
  DEFAULT_CONTENT_MEMORY,
  DEFAULT_COLLECTOR_LIMITS,
  DELTA_SIZE_EDGES,
  CELL_KIND,
  CELL_KIND_NAMES,
  codeKind,
  codeLevel,
  levelBytes,
  type MigrationReport,
  type MigrationReportOptions,
  type RenderReportOptions,
  type ReportInput,
  type ReportSummary,
  type SizeBucket,
  type InferredCounts,
  type RoundStats,
  type BlockMap,
  type MapFrame,
  type CollectorLimits,
  type CellKind,
} from './report/index.js';
