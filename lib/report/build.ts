import { createReadStream } from 'node:fs';
import { argRangeError } from '../errors.js';
import { RamRecordParser, type RamRecord } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import { QEMU_VM_FILE_MAGIC, readQemuMigration } from '../qemu/migration-file.js';
import { MemoryPageStore } from '../store/memory-page-store.js';
import type { PageStore } from '../store/page-store.js';
import { RamApplier } from '../store/ram-applier.js';
import { RamLoader } from '../store/ram-loader.js';
import { qemuFileSummary, streamSummary, type ReportSummary, type SizeBucket } from './summary.js';
import { DELTA_SIZE_EDGES, MigrationCollector, type BlockMap, type CollectorLimits, type RoundStats } from './collect.js';

/** PAGE records, all rounds, by what {@link buildMigrationReport} inferred about them (see {@link RoundStats}). */
export interface InferredCounts {
  /** Pages the stream had not sent before. */
  newPages: number;
  /** Resent pages whose delta would have fitted: the sender's cache missed. */
  cacheMiss: number;
  /** Resent pages whose delta would not fit in a page: overflows (or misses XBZRLE could not have helped). */
  overflow: number;
  /** Resent pages not told apart (page contents not kept). */
  resent: number;
}

/** Everything a report shows. */
export interface MigrationReport {
  /** What `xbzrle stat` computes. */
  summary: ReportSummary;
  /** Per round: bytes, pages by kind, rates. */
  rounds: RoundStats[];
  /** Per RAM block: page maps. */
  blocks: BlockMap[];
  /** XBZRLE delta sizes: every bucket up to the page size, empty ones included. */
  deltaSizes: SizeBucket[];
  /** True for a mapped-ram file: pages are stored once each, at fixed offsets; the maps show the pages present (as PAGE, in the first round). */
  mappedRam: boolean;
  /** Resent PAGE records: totals of the inferred kinds (see {@link RoundStats}). */
  inferred: InferredCounts;
  /**
   * How PAGE records for pages sent before were told apart: `content` (every one,
   * by the delta it would have needed), `none` (page contents not kept: all
   * `resent`), `partial` (by content until `contentMemory` ran out).
   */
  classification: 'content' | 'none' | 'partial';
}

/** Input of {@link buildMigrationReport}: a file path, bytes, or chunks. */
export type ReportInput = string | Uint8Array | AsyncIterable<Uint8Array>;

/** Options of {@link buildMigrationReport}. */
export interface MigrationReportOptions extends Partial<CollectorLimits> {
  /** Name of the input in the report. Default: the path, or "input". */
  name?: string;
  /** Page size of a delta stream; for QEMU files, used only when the file does not say (default 4096). */
  pageSize?: number;
  /**
   * Most bytes of page contents kept to tell cache misses from overflows (default
   * 256 MiB). A stream declaring more RAM, or 0, is read without contents: pages
   * resent as PAGE are then reported as "resent" (miss or overflow).
   */
  contentMemory?: number;
  /** Called as input arrives, with the bytes read so far. */
  onProgress?: (bytesRead: number) => void;
}

/** Default {@link MigrationReportOptions.contentMemory}: 256 MiB. */
export const DEFAULT_CONTENT_MEMORY = 256 * 1024 * 1024;

/**
 * Reads a QEMU migration file (recognised by its "QEVM" magic) or a RAM record
 * stream (a delta from `xbzrle diff`, a stream from `xbzrle encode` or an
 * `XbzrleEncodeStream`) and gathers what {@link renderReportHtml} shows: the
 * `stat` summary, per-round statistics, page maps per block and round, and the
 * delta size histogram. Every record is checked as `stat` checks it; memory
 * stays bounded (one bit per page, one byte per map cell, and page contents
 * only up to `contentMemory`).
 *
 * @throws XbzrleError for malformed input (the same errors as `readQemuMigration` and `RamRecordParser`)
 *
 * @example
 * ```ts
 * const report = await buildMigrationReport('vm.mig')
 * await writeFile('report.html', renderReportHtml(report))
 * ```
 */
export async function buildMigrationReport(input: ReportInput, options: MigrationReportOptions = {}): Promise<MigrationReport> {
  const contentMemory = options.contentMemory ?? DEFAULT_CONTENT_MEMORY;
  if (!(contentMemory >= 0)) throw argRangeError('options.contentMemory', 'a non-negative number of bytes', contentMemory);
  const name = options.name ?? (typeof input === 'string' ? input : 'input');
  const source: AsyncIterable<Uint8Array> =
    typeof input === 'string'
      ? createReadStream(input, { highWaterMark: 1 << 20 })
      : input instanceof Uint8Array
        ? (async function* () {
            yield input;
          })()
        : input;
  let bytes = 0;
  const iterator = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let headBytes = 0;
  try {
    while (headBytes < HEAD_BYTES) {
      const r = await iterator.next();
      if (r.done === true) break;
      head.push(r.value);
      headBytes += r.value.length;
      bytes += r.value.length;
      options.onProgress?.(bytes);
    }
    const first = new Uint8Array(Math.min(headBytes, HEAD_BYTES));
    let at = 0;
    for (const h of head) {
      const n = Math.min(first.length - at, h.length);
      first.set(h.subarray(0, n), at);
      at += n;
    }
    const qemu = at >= 4 && new DataView(first.buffer).getUint32(0) === QEMU_VM_FILE_MAGIC;
    const chunks = (async function* () {
      yield* head;
      for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) {
        bytes += r.value.length;
        options.onProgress?.(bytes);
        yield r.value;
      }
    })();
    const content = contentMemory > 0 ? new ContentStore(contentMemory) : null;
    try {
      if (qemu) {
        const pageSize = configuredPageSize(first, options.pageSize ?? 4096);
        const collector = new MigrationCollector(pageSize, options, content?.memory ?? null);
        content?.attach(collector);
        // Pages of a mapped-ram file reach onPage only (not onRecord): they are the ones no record announced.
        let recordPage = false;
        const info = await readQemuMigration(chunks, {
          store: content,
          pageSize: options.pageSize,
          onRecord: (rec) => {
            recordPage = rec.kind === 'page' || rec.kind === 'zero' || rec.kind === 'xbzrle';
            collector.record(rec);
          },
          onPage: (block, offset) => {
            if (recordPage) recordPage = false;
            else collector.presentPage(block, offset);
          },
        });
        if (info.pageSize !== pageSize) throw new Error(`buildMigrationReport: page size ${info.pageSize} read, ${pageSize} expected`);
        return finish(collector, qemuFileSummary(name, bytes, info, collector.deltaSizes));
      }
      const pageSize = options.pageSize ?? 4096;
      const collector = new MigrationCollector(pageSize, options, content?.memory ?? null);
      content?.attach(collector);
      const parser = new RamRecordParser({ pageSize });
      const loader = new RamLoader({ pageSize, store: content });
      await new RamApplier(parser, loader, (rec) => collector.record(rec)).applyAll(chunks);
      return finish(collector, streamSummary(name, pageSize, bytes, loader.blocks ?? [], loader.stats.toQueryMigrate(), parser.position, collector.deltaSizes));
    } finally {
      content?.dispose();
    }
  } finally {
    await iterator.return?.();
  }
}

/** Bytes read before deciding what the input is (the configuration section of a QEMU file fits). */
const HEAD_BYTES = 64 * 1024;

/**
 * The target page size a QEMU file's configuration section gives
 * (`configuration/target-page-bits`), read from the first bytes, or `fallback`
 * when it has none (as `readQemuMigration` does). The reader does not hand its
 * page size to `onRecord`, and the collector needs it from the first record on.
 * Only reads: `readQemuMigration` validates.
 */
export function configuredPageSize(head: Uint8Array, fallback: number): number {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let p = 8;
  if (head.length < p + 5 || head[p] !== 0x07) return fallback;
  p += 5 + v.getUint32(p + 1);
  while (p + 2 <= head.length && head[p] === 0x05) {
    const n = head[p + 1]!;
    if (p + 2 + n + 4 > head.length) return fallback;
    const name = new TextDecoder().decode(head.subarray(p + 2, p + 2 + n));
    p += 2 + n + 4;
    if (name === 'configuration/target-page-bits') return p + 4 <= head.length ? 2 ** v.getUint32(p) : fallback;
    if (name === 'configuration/capabilities') {
      if (p + 4 > head.length) return fallback;
      let count = v.getUint32(p);
      p += 4;
      while (count-- > 0 && p < head.length) p += 1 + head[p]!;
    } else if (name === 'configuration/uuid') p += 16;
    else return fallback;
  }
  return fallback;
}

function finish(c: MigrationCollector, summary: ReportSummary): MigrationReport {
  const inferred: InferredCounts = { newPages: 0, cacheMiss: 0, overflow: 0, resent: 0 };
  for (const r of c.rounds) {
    inferred.newPages += r.newPages;
    inferred.cacheMiss += r.cacheMiss;
    inferred.overflow += r.overflow;
    inferred.resent += r.resent;
  }
  const limit = summary.pageSize;
  const deltaSizes = c.deltaSizes
    .map((count, i) => ({ from: i === 0 ? 0 : DELTA_SIZE_EDGES[i - 1]! + 1, to: DELTA_SIZE_EDGES[i]!, count }))
    .filter((b) => b.from <= limit && b.to > 0);
  return { summary, rounds: c.rounds, blocks: c.blockMaps(), deltaSizes, inferred, classification: c.classification, mappedRam: c.mappedRam };
}


/**
 * The store the loader applies pages to while the report is gathered: page
 * contents in a {@link MemoryPageStore} until they would take more than
 * `limit` bytes (a MEM_SIZE list declaring more, or pages past it without
 * one), then nothing (reads give zeros, writes are dropped, and the collector
 * stops classifying resent pages).
 */
class ContentStore implements PageStore {
  memory: MemoryPageStore | null;
  private collector: MigrationCollector | null = null;

  constructor(private readonly limit: number) {
    this.memory = new MemoryPageStore({ maxMemory: Number.MAX_SAFE_INTEGER });
  }

  attach(collector: MigrationCollector): MigrationCollector {
    this.collector = collector;
    if (this.memory === null) collector.dropContent();
    return collector;
  }

  get(block: string, offset: number, into: Uint8Array): void {
    // Dropped: the page is only decoded to validate the delta; its bytes are not used.
    this.memory?.get(block, offset, into);
  }

  put(block: string, offset: number, data: Uint8Array): void {
    if (this.memory === null) return;
    this.memory.put(block, offset, data);
    if (this.memory.memoryUsage > this.limit) this.drop();
  }

  declare(blocks: readonly RamBlock[]): void {
    this.collector?.declareUnknown(blocks);
    let total = 0;
    for (const b of blocks) total += b.length;
    if (this.memory !== null && total + this.memory.memoryUsage > this.limit) this.drop();
    this.memory?.declare(blocks);
  }

  private drop(): void {
    this.memory?.dispose();
    this.memory = null;
    this.collector?.dropContent();
  }

  dispose(): void {
    this.memory?.dispose();
    this.memory = null;
  }
}
