// xbzrle/web: everything that runs without Node (browsers, Deno, edge
// runtimes): the codec, the cache, the framing, the memory store, and the
// streams as WHATWG stream pairs and async generators. Nothing here imports a Node module or
// uses Buffer.
export { XbzrleError, type XbzrleErrorCode, type XbzrleErrorOptions } from '../errors.js';
export { encodeXbzrle } from '../codec/encode.js';
export { decodeXbzrle } from '../codec/decode.js';
export { isZeroPage } from '../codec/zero.js';
export { allocPages, freePages } from '../codec/pages.js';
export { PageCache, CACHED_PAGE_LIFETIME, DEFAULT_CACHE_SIZE, type PageCacheOptions, type BlockRange } from '../cache/page-cache.js';
export { RAM_SAVE_FLAG, ENCODING_FLAG_XBZRLE, MIN_PAGE_SIZE, MAX_PAGE_SIZE, MAX_IDSTR_LENGTH } from '../format/flags.js';
export { RecordWriter, type RamBlock, type RecordWriterOptions, type SlabAllocator } from '../format/record-writer.js';
export { RamRecordParser, RamRecord, DEFAULT_MAX_BLOCKS, DEFAULT_MAX_IMAGE_SIZE, type RamRecordKind, type RamRecordParserOptions } from '../format/record-parser.js';
export type { PageStore, PageLocation } from '../store/page-store.js';
export { MemoryPageStore, DEFAULT_MAX_MEMORY, type MemoryPageStoreOptions } from '../store/memory-page-store.js';
export { RamLoader, type RamLoaderOptions, type PageSink, type DecodedPageKind } from '../store/ram-loader.js';
export { RATE_PERIOD_MS, XbzrleStats, type RateMode, type RecordCounts, type XbzrleStatsJSON, type XbzrleStatsOptions } from '../stats.js';
export type { PageRecord, EncoderOptions } from '../core/encoder.js';
export type { DecoderOptions } from '../core/decoder.js';
export {
  XbzrleEncoderStream,
  XbzrleDecoderStream,
  type EncoderInput,
  type WebDecodedPage,
  type XbzrleEncoderStreamOptions,
  type XbzrleDecoderStreamOptions,
} from './streams.js';
export { encodeRounds, decodeRecords, type EncodeRoundsOptions } from './iterators.js';
export type { EncodeRoundsOption } from '../core/generators.js';
export type { RoundItem, WithStats, StatsHolder } from '../core/generators.js';
