import type { TransformCallback } from 'node:stream';
import { Buffer } from 'node:buffer';
import { PageCache, DEFAULT_CACHE_SIZE, UNDECLARED_BLOCK_SPAN, type BlockRange } from '../cache/page-cache.js';
import { PageKernel, STEP_MISS, STEP_ZERO } from '../codec/kernel.js';
import { argRangeError, argTypeError, argValueError, XbzrleError } from '../errors.js';
import { encodeName } from '../format/bytes.js';
import { MAX_IDSTR_LENGTH } from '../format/flags.js';
import { DEFAULT_CHUNK_SIZE, RecordWriter, type RamBlock } from '../format/record-writer.js';
import { checkOptions, checkPageSize, checkPositiveInteger } from './options.js';
import { PacedTransform } from './paced-transform.js';
import { XbzrleStats } from '../stats.js';

/** One input of {@link XbzrleEncodeStream}: a page, or a run of consecutive pages, of one block. */
export interface PageRecord {
  /** Block name (QEMU's RAMBlock idstr), 1 to 255 bytes of UTF-8. */
  block: string;
  /** Byte offset of the first page in the block; a multiple of the page size. */
  offset: number;
  /** The page contents; a positive multiple of the page size. Any `Uint8Array` view. */
  data: Uint8Array;
}

/** Options of {@link XbzrleEncodeStream}. */
export interface XbzrleEncodeStreamOptions {
  /** Page size: a power of two from 1 KiB to 16 KiB. Default 4096, or the size of `cache`. */
  pageSize?: number;
  /** Size of the page cache the stream creates, in bytes (rounded down to a power-of-two number of pages). Default 64 MiB. Ignored with `cache`. */
  cacheSize?: number;
  /** A {@link PageCache} to use (and share) instead of a new one. Its page size must equal `pageSize`. */
  cache?: PageCache;
  /** Blocks of the memory being sent, written first as a MEM_SIZE record; records for other blocks are then refused. Lengths must be multiples of the page size. */
  blocks?: readonly RamBlock[];
  /** Use XBZRLE deltas (default true); false sends only PAGE and ZERO records and leaves the cache alone. */
  xbzrle?: boolean;
  /** Output chunks are emitted once this many bytes are pending (and on `sync()`/`end()`). Default 64 KiB. */
  chunkSize?: number;
  /** High-water mark of the readable (byte) side. Default 64 KiB. */
  readableHighWaterMark?: number;
  /** High-water mark of the writable (record) side, in records. Default 16. */
  writableHighWaterMark?: number;
}

/** Options of {@link XbzrleEncodeStream.sync}. */
export interface SyncOptions {
  /** QEMU's last stage: from now on the cache is no longer filled or refreshed. */
  final?: boolean;
}

/** A lone UTF-16 surrogate: such names would not survive the trip through UTF-8. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

class SyncRequest {
  constructor(readonly final: boolean) {}
}

/**
 * Turns page records into a QEMU RAM record stream with XBZRLE deltas.
 *
 * Writable side: {@link PageRecord} objects. Readable side: bytes, in chunks
 * of at least `chunkSize` (64 KiB) where the input allows; call
 * {@link XbzrleEncodeStream.sync} to end a round (it writes EOS and pushes out
 * what is pending).
 *
 * Per page, QEMU's sender decisions (spec: ram-stream.md §8): an all-zero page
 * goes as ZERO (fill 0) and its cache entry becomes a zero page; a cache miss
 * goes as PAGE and the page enters the cache; a hit that is unchanged sends
 * nothing; a hit with a delta that fits a page goes as XBZRLE; one that does
 * not (overflow) as PAGE; the cache then holds what was sent, so the two sides
 * stay in step. Unlike QEMU, pages enter the cache from their first send.
 *
 * @example
 * ```ts
 * const enc = new XbzrleEncodeStream({ blocks: [{ id: 'ram', length: image.length }] })
 * enc.pipe(socket)
 * enc.write({ block: 'ram', offset: 0, data: image })
 * enc.sync()              // end of round 1
 * enc.write({ block: 'ram', offset: 0, data: image2 })
 * enc.end()
 * ```
 */
export class XbzrleEncodeStream extends PacedTransform {
  private readonly counters: XbzrleStats;
  /** The page cache in use. */
  readonly cache: PageCache;
  /** Page size of the stream. */
  readonly pageSize: number;

  private readonly writer: RecordWriter;
  private readonly useXbzrle: boolean;
  private readonly declared: Map<string, number> | null;
  private finalStage = false;
  /** Set when `push()` reports a full reader during the current page. */
  private blocked = false;
  /** Chunks the writer produced during the current page; pushed once the page (and the cache) is done. */
  private readonly outbox: Uint8Array[] = [];
  /** Set once this stream changed the cache; cleared again when it ends cleanly. */
  private touchedCache = false;
  /** Zero test and delta encoding (SIMD when available), with its staging area. */
  private readonly kernel: PageKernel;
  /** True when this stream made its cache (and so disposes of it when it closes). */
  private readonly ownsCache: boolean;
  private readonly validNames = new Set<string>();

  constructor(options?: XbzrleEncodeStreamOptions) {
    const opts = checkOptions(options);
    const cache = opts.cache;
    if (cache !== undefined && !(cache instanceof PageCache)) throw argTypeError('options.cache', 'a PageCache', cache);
    const pageSize = checkPageSize(opts.pageSize ?? cache?.pageSize ?? 4096, 'options.pageSize');
    if (cache !== undefined && cache.pageSize !== pageSize) {
      throw argValueError('options.cache', `must have the stream's page size (${pageSize})`, cache.pageSize);
    }
    const chunkSize = checkPositiveInteger(opts.chunkSize ?? DEFAULT_CHUNK_SIZE, 'options.chunkSize', 2 ** 30);
    if (opts.xbzrle !== undefined && typeof opts.xbzrle !== 'boolean') throw argTypeError('options.xbzrle', 'a boolean', opts.xbzrle);
    const blocks = opts.blocks === undefined ? null : checkBlocks(opts.blocks, pageSize);
    super({
      writableObjectMode: true,
      readableObjectMode: false,
      readableHighWaterMark: opts.readableHighWaterMark ?? 64 * 1024,
      writableHighWaterMark: opts.writableHighWaterMark ?? 16,
    });
    this.pageSize = pageSize;
    this.cache = cache ?? new PageCache({ size: opts.cacheSize ?? DEFAULT_CACHE_SIZE, pageSize });
    this.ownsCache = cache === undefined;
    this.kernel = new PageKernel(pageSize);
    this.useXbzrle = opts.xbzrle ?? true;
    this.counters = new XbzrleStats(pageSize);
    this.writer = new RecordWriter({ pageSize, chunkSize, alloc: (n) => Buffer.allocUnsafe(n) }, (chunk) => this.outbox.push(chunk));
    this.declared = null;
    if (blocks !== null) {
      this.declared = new Map(blocks.map((b) => [b.id, b.length]));
      this.cache.declareBlocks(blocks);
      this.writer.memSize(blocks);
      this.counters.records.MEM_SIZE++;
    }
  }

  /**
   * Ends a dirty-sync round: writes EOS after every record written before it,
   * pushes out what is pending, and advances the cache generation. Ordered
   * with `write()` like zlib's `flush()`: no need to wait for earlier writes.
   * After `sync({ final: true })` the cache is no longer filled or refreshed
   * (QEMU's last stage); entries of pages sent after that are dropped so the
   * cache never disagrees with the receiver.
   */
  sync(options?: SyncOptions | ((err?: Error | null) => void), callback?: (err?: Error | null) => void): void {
    if (typeof options === 'function') {
      callback = options;
      options = undefined;
    }
    const final = options?.final ?? false;
    if (typeof final !== 'boolean') throw argTypeError('options.final', 'a boolean', final);
    this.write(new SyncRequest(final), callback);
  }

  /** Counters in QEMU's `query-migrate` shape. */
  get stats(): XbzrleStats {
    if (!this.destroyed) this.counters.cacheSize = this.cache.size;
    return this.counters;
  }

  /** Resizes the page cache now, keeping entries (see {@link PageCache.resize}). Returns the real size. */
  setCacheSize(bytes: number): number {
    return this.cache.resize(bytes);
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk instanceof SyncRequest) {
      this.doSync(chunk.final);
      callback();
      return;
    }
    let range: BlockRange;
    let record: PageRecord;
    try {
      record = this.checkRecord(chunk);
      range = this.cache.block(record.block, this.declared?.get(record.block));
      // A shared cache may know the block with a shorter declared length: grow it
      // (the cache moves it if needed) so its keys never run into the next block.
      const end = record.offset + record.data.length;
      if (end > range.span) range = this.cache.block(record.block, end);
    } catch (err) {
      callback(err as Error);
      return;
    }
    this.encodePages(record, range.base, 0, callback);
  }

  override _flush(callback: TransformCallback): void {
    this.writer.eos();
    this.counters.records.EOS++;
    this.writer.flush();
    this.pushOutbox();
    this.touchedCache = false;
    callback();
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    // Pages written into the cache may never have reached the receiver: a cache
    // shared with later streams must not assume they did. (Block bases stay.)
    if (this.touchedCache) this.cache.clear();
    this.counters.cacheSize = this.cache.size;
    this.kernel.dispose();
    if (this.ownsCache) this.cache.dispose();
    super._destroy(err, callback);
  }

  private doSync(final: boolean): void {
    this.writer.eos();
    this.counters.records.EOS++;
    this.counters.dirtySyncCount++;
    this.writer.flush();
    this.pushOutbox();
    this.cache.nextGeneration();
    if (final) this.finalStage = true;
  }

  /** Pushes what the writer produced. Only between pages: a synchronous 'data' handler may use the cache. */
  private pushOutbox(): void {
    const out = this.outbox;
    for (let i = 0; i < out.length; i++) {
      const chunk = out[i]!;
      this.counters.transferred += chunk.length;
      if (!this.push(chunk)) this.blocked = true;
    }
    out.length = 0;
  }

  /** Encodes pages of `record` from page `index` on, pausing when the reader is full. */
  private encodePages(record: PageRecord, base: number, index: number, callback: TransformCallback): void {
    const { block, offset, data } = record;
    const ps = this.pageSize;
    const count = data.length / ps;
    const kernel = this.kernel;
    if (this.destroyed) return; // a resume that came after destroy(): the kernel is gone
    try {
      for (let i = index; i < count; ) {
        // Stage a group of pages: copied into the kernel's memory (which also
        // snapshots memory another thread may change), or used in place.
        const n = Math.min(kernel.stagePages, count - i);
        kernel.stage(data, i * ps, n);
        const src = kernel.src;
        const at = kernel.srcOff - i * ps;
        for (const end = i + n; i < end; i++) {
          this.blocked = false;
          this.encodePage(block, offset + i * ps, base + offset + i * ps, src, at + i * ps);
          this.pushOutbox();
          if (this.blocked && i + 1 < count) {
            const next = i + 1;
            // The staging area may be reused meanwhile: restage from the record on resume.
            this.resumeOnRead(() => this.encodePages(record, base, next, callback));
            return;
          }
        }
      }
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }

  /** QEMU's per-page decision (ram-stream.md §8), for the page at `data[at]`. */
  private encodePage(block: string, offset: number, key: number, data: Uint8Array, at: number): void {
    const ps = this.pageSize;
    const stats = this.counters;
    const writer = this.writer;
    const cache = this.cache;
    const xbzrle = this.useXbzrle;
    this.touchedCache ||= xbzrle;
    // Zero test, encode against the cached copy and cache update in one kernel
    // step; the slot is only peeked here, and counted by lookup() below.
    const slot = xbzrle ? cache.peekSlot(key) : -1;
    const r = this.kernel.step(cache, slot, data, at, xbzrle && !this.finalStage);
    if (r === STEP_ZERO) {
      writer.zero(block, offset, 0);
      stats.duplicate++;
      stats.records.ZERO++;
      // QEMU caches zero pages even in the last stage.
      if (xbzrle) cache.insertZero(key);
      return;
    }
    if (!xbzrle) {
      writer.page(block, offset, data, at);
      stats.normal++;
      stats.records.PAGE++;
      return;
    }
    cache.account(slot); // the lookup: a hit refreshes the generation; counts the hit or the miss
    if (r === STEP_MISS) {
      stats.cacheMiss++;
      writer.page(block, offset, data, at);
      stats.normal++;
      stats.records.PAGE++;
      if (!this.finalStage) cache.insertFrom(key, data, at);
      return;
    }
    stats.xbzrlePages++;
    if (r === 0) {
      stats.skipped++;
      return;
    }
    if (r < 0) {
      // Overflow, or (16 KiB pages) a page in which every byte changed: no delta exists.
      stats.overflow++;
      stats.xbzrleBytes += ps;
      writer.page(block, offset, data, at);
      stats.normal++;
      stats.records.PAGE++;
    } else {
      stats.xbzrleBytes += writer.xbzrle(block, offset, this.kernel.delta, this.kernel.deltaOff, r) - 8;
      stats.records.XBZRLE++;
    }
    // The step already made the cached copy the page sent; in the last stage it is dropped instead.
    if (this.finalStage) cache.invalidate(key);
  }

  private checkRecord(chunk: unknown): PageRecord {
    const bad = (why: string): never => {
      throw new XbzrleError('ERR_INVALID_RECORD', `invalid page record: ${why}`);
    };
    if (chunk === null || typeof chunk !== 'object') bad('expected an object { block, offset, data }');
    const { block, offset, data } = chunk as Partial<PageRecord>;
    const ps = this.pageSize;
    if (typeof block !== 'string') return bad('"block" must be a string');
    if (!this.validNames.has(block)) {
      const nameLength = encodeName(block).length;
      if (nameLength === 0 || nameLength > MAX_IDSTR_LENGTH || LONE_SURROGATE.test(block)) {
        bad(`block name ${JSON.stringify(block)} must be 1 to ${MAX_IDSTR_LENGTH} bytes of well-formed UTF-8`);
      }
      this.validNames.add(block);
    }
    if (!(data instanceof Uint8Array)) return bad('"data" must be a Uint8Array');
    if (data.length === 0 || data.length % ps !== 0) bad(`data length ${data.length} is not a positive multiple of the page size ${ps}`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return bad(`offset ${String(offset)} is not a non-negative integer`);
    if (offset % ps !== 0) bad(`offset ${offset} is not a multiple of the page size ${ps}`);
    const limit = this.declared === null ? UNDECLARED_BLOCK_SPAN : this.declared.get(block);
    if (limit === undefined) bad(`block ${JSON.stringify(block)} is not among the declared blocks`);
    if (offset + data.length > limit!) {
      bad(`pages ${offset}..${offset + data.length} run past the end of block ${JSON.stringify(block)} (${limit} bytes)`);
    }
    return { block, offset, data };
  }
}

function checkBlocks(blocks: unknown, pageSize: number): RamBlock[] {
  if (!Array.isArray(blocks)) throw argTypeError('options.blocks', 'an array of { id, length }', blocks);
  const seen = new Set<string>();
  const out: RamBlock[] = [];
  let total = 0;
  for (const [i, b] of (blocks as unknown[]).entries()) {
    const { id, length } = (b ?? {}) as Partial<RamBlock>;
    if (typeof id !== 'string') throw argTypeError(`options.blocks[${i}].id`, 'a string', id);
    const bytes = encodeName(id).length;
    if (bytes === 0 || bytes > MAX_IDSTR_LENGTH || LONE_SURROGATE.test(id)) {
      throw argRangeError(`options.blocks[${i}].id`, `1 to ${MAX_IDSTR_LENGTH} bytes of well-formed UTF-8`, id);
    }
    if (seen.has(id)) throw argValueError(`options.blocks[${i}].id`, 'must be unique', id);
    seen.add(id);
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0 || length % pageSize !== 0) {
      throw argRangeError(`options.blocks[${i}].length`, `a positive multiple of the page size (${pageSize})`, length);
    }
    total += length;
    out.push({ id, length });
  }
  if (total > Number.MAX_SAFE_INTEGER) throw argRangeError('options.blocks', 'a total length below 2^53', total);
  return out;
}

/** Creates an {@link XbzrleEncodeStream}. */
export function createXbzrleEncodeStream(options?: XbzrleEncodeStreamOptions): XbzrleEncodeStream {
  return new XbzrleEncodeStream(options);
}
