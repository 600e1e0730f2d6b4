import { argValueError } from './errors.js';

/** Counts of records by kind, as they appear in the stream. */
export interface RecordCounts {
  /** PAGE records (raw pages). */
  PAGE: number;
  /** ZERO records (pages of one byte value). */
  ZERO: number;
  /** XBZRLE records (deltas). */
  XBZRLE: number;
  /** MEM_SIZE records (block lists). */
  MEM_SIZE: number;
  /** EOS records (ends of sections / rounds). */
  EOS: number;
  /** MULTIFD_FLUSH records (QEMU ≥ 8.1 streams), present in `toJSON()` only when there were some. */
  MULTIFD_FLUSH?: number;
}

/** The statistics in QEMU's `query-migrate` shape (see {@link XbzrleStats.toJSON}). */
export interface XbzrleStatsJSON {
  /** QEMU's `ram` counters. */
  ram: {
    /** Bytes output (encoder) or consumed (decoder); QEMU's exact count for migration files. */
    transferred: number;
    /** ZERO records. */
    duplicate: number;
    /** PAGE records. */
    normal: number;
    /** Page size × PAGE records. */
    'normal-bytes': number;
    /** Pages that hit the cache unchanged (nothing sent). Left out by {@link XbzrleStats.toQueryMigrate} for QEMU ≥ 9.1, which dropped it. */
    skipped: number;
    /** `sync()` calls (encoder) or EOS records (decoder). */
    'dirty-sync-count': number;
    /** Bytes of RAM sent while the guest ran (QEMU ≥ 7.0; `readQemuMigration` only). */
    'precopy-bytes'?: number;
    /** Bytes of RAM sent while the guest was stopped: the `ram` END section (QEMU ≥ 7.0; `readQemuMigration` only). */
    'downtime-bytes'?: number;
    /** Bytes of RAM sent in postcopy (QEMU ≥ 7.0; `readQemuMigration` only: 0, postcopy is not read). */
    'postcopy-bytes'?: number;
  };
  /** QEMU's `xbzrle-cache` counters. */
  'xbzrle-cache': {
    /** Cache size in bytes. */
    'cache-size': number;
    /** Σ(XBZRLE record length − 8) + page size × overflows. */
    bytes: number;
    /** Cache hits: XBZRLE records + overflows + unchanged hits. */
    pages: number;
    /** Lookups that missed. */
    'cache-miss': number;
    /** Misses per page sent (cumulative; with `rates: 'qemu'`, as of QEMU's last rate recomputation). */
    'cache-miss-rate': number;
    /** Hits whose delta did not fit a page. */
    overflow: number;
    /** Page bytes per XBZRLE byte (cumulative; with `rates: 'qemu'`, as of QEMU's last rate recomputation). */
    'encoding-rate': number;
  };
  /** Records by kind (not a QEMU field). */
  records: RecordCounts;
}

/** {@link XbzrleStats.toQueryMigrate}'s shape: {@link XbzrleStatsJSON} where `ram.skipped` may be absent (QEMU ≥ 9.1). */
export interface QueryMigrateJSON extends Omit<XbzrleStatsJSON, 'ram'> {
  /** QEMU's `ram` counters, as that version reports them. */
  ram: Omit<XbzrleStatsJSON['ram'], 'skipped'> & {
    /** Pages that hit the cache unchanged: absent for QEMU ≥ 9.1. */
    skipped?: number;
  };
}

/** How {@link XbzrleStats} computes its two rates. */
export type RateMode = 'cumulative' | 'qemu';

/** Options of {@link XbzrleStats}. */
export interface XbzrleStatsOptions {
  /**
   * `'cumulative'` (default): `cacheMissRate` and `encodingRate` cover the
   * whole stream so far. `'qemu'`: as QEMU computes them, over rate periods
   * (see {@link XbzrleStats.dirtySync}).
   */
  rates?: RateMode;
}

/** A rate period ends at the first dirty sync more than this many ms after it began (QEMU's rule). */
export const RATE_PERIOD_MS = 1000;

/** The big-endian address-and-flags word that opens every record; QEMU leaves it out of `xbzrle-bytes`. */
/** @internal */
export const RECORD_HEADER_BYTES = 8;

/**
 * Counters like QEMU's `query-migrate` (spec: ram-stream.md §9), kept by
 * both streams. The encoder knows every one of them; the decoder counts what
 * the stream shows (it cannot see cache misses, overflows or unchanged hits,
 * which leave no record, so those stay 0 there).
 *
 * The two rates are cumulative over the whole stream by default. With
 * `rates: 'qemu'` (an encoder option) they follow QEMU's rule (see
 * {@link XbzrleStats.dirtySync}): recomputed at a dirty sync more than a
 * second into the current rate period, so they stay 0 until the first such
 * sync (a stream shorter than a second reports 0 for both, as QEMU does).
 * The formula is QEMU's; the counters are this encoder's: its first round
 * looks pages up in the cache, so its misses include first-round pages,
 * which QEMU's first pass sends without a lookup.
 */
export class XbzrleStats {
  /** Encoder: every byte output. Decoder: every byte consumed by complete records. */
  transferred = 0;
  /** ZERO records (`ram.duplicate`). */
  duplicate = 0;
  /** PAGE records (`ram.normal`): cache misses, overflows, and pages sent with XBZRLE off. */
  normal = 0;
  /** Pages that hit the cache unchanged, so nothing was sent (encoder only). */
  skipped = 0;
  /** Encoder: `sync()` calls so far. Decoder: EOS records seen. */
  dirtySyncCount = 0;
  /** Cache size in bytes (encoder; 0 in the decoder). */
  cacheSize = 0;
  /** Σ over XBZRLE records of (record length − 8), plus page size × overflows. */
  xbzrleBytes = 0;
  /** Cache hits: XBZRLE records + overflows + unchanged hits (decoder: XBZRLE records). */
  xbzrlePages = 0;
  /** Lookups that missed the cache (encoder only). */
  cacheMiss = 0;
  /** Hits whose delta did not fit in a page and went out as PAGE (encoder only). */
  overflow = 0;
  /** Records by kind. */
  readonly records: RecordCounts = { PAGE: 0, ZERO: 0, XBZRLE: 0, MEM_SIZE: 0, EOS: 0 };
  /** MULTIFD_FLUSH records (accepted with `allowMultifdFlush`, or in a stream from QEMU ≥ 8.1). */
  multifdFlushes = 0;
  /** `ram.precopy-bytes`, when known (set by `readQemuMigration` for QEMU ≥ 7.0 streams); else left out of `toJSON()`. */
  precopyBytes: number | undefined = undefined;
  /** `ram.downtime-bytes`, when known (as `precopyBytes`). */
  downtimeBytes: number | undefined = undefined;
  /** `ram.postcopy-bytes`, when known (as `precopyBytes`). */
  postcopyBytes: number | undefined = undefined;
  /** Whether {@link XbzrleStats.toQueryMigrate} has `ram.skipped` (true; `readQemuMigration` sets false for QEMU ≥ 9.1, which dropped it). `toJSON()` always has it. */
  reportSkipped = true;

  /** How the two rates are computed. */
  readonly rates: RateMode;

  // QEMU rate periods: when the current one began, and the counters then.
  private periodStart: number;
  private periodSent = 0;
  private periodMiss = 0;
  private periodPages = 0;
  private periodBytes = 0;
  private qemuMissRate = 0;
  private qemuEncodingRate = 0;

  constructor(
    /** Page size of the stream. */
    readonly pageSize: number,
    options: XbzrleStatsOptions = {},
  ) {
    const rates = options.rates ?? 'cumulative';
    if (rates !== 'cumulative' && rates !== 'qemu') throw argValueError('options.rates', "must be 'cumulative' or 'qemu'", rates);
    this.rates = rates;
    this.periodStart = now();
  }

  /**
   * A dirty sync of the sender at time `at` (ms, `performance.now()` by
   * default). The encoder calls it at every `sync()` up to and including
   * `sync({ final: true })`, and at `end()` when there was no final sync (QEMU's
   * completion begins with one). With `rates: 'qemu'`, it ends the current
   * rate period (the first began when the stats were made) when more than
   * {@link RATE_PERIOD_MS} have passed since it began. If the period sent
   * pages (ZERO, PAGE or XBZRLE records, overflows included; unchanged hits
   * send nothing), the miss rate becomes the misses per page sent and the
   * encoding rate (cache hits × page size) / XBZRLE bytes (0 when either is
   * 0), misses, hits and bytes counted since the last recomputation; if it
   * sent none, the rates and those base counters stay and only a new period
   * begins. Pages sent after the last dirty sync (QEMU's final stage) never
   * count.
   */
  dirtySync(at: number = now()): void {
    if (at - this.periodStart <= RATE_PERIOD_MS) return;
    this.periodStart = at;
    const sent = this.pagesSent;
    const pageCount = sent - this.periodSent;
    this.periodSent = sent;
    if (pageCount === 0) return;
    this.qemuMissRate = (this.cacheMiss - this.periodMiss) / pageCount;
    this.qemuEncodingRate = this.encodingRateOf(this.xbzrlePages - this.periodPages, this.xbzrleBytes - this.periodBytes);
    this.periodMiss = this.cacheMiss;
    this.periodPages = this.xbzrlePages;
    this.periodBytes = this.xbzrleBytes;
  }

  /** @internal A ZERO record. */
  countZero(): void {
    this.duplicate++;
    this.records.ZERO++;
  }

  /** @internal A PAGE record. */
  countPage(): void {
    this.normal++;
    this.records.PAGE++;
  }

  /**
   * @internal An XBZRLE record of `recordBytes` bytes (header, block name,
   * encoding byte, length and delta). As QEMU's counter, `xbzrleBytes` counts
   * it less the 8-byte address-and-flags word.
   */
  countDelta(recordBytes: number): void {
    this.xbzrleBytes += recordBytes - RECORD_HEADER_BYTES;
    this.records.XBZRLE++;
  }

  /**
   * @internal Cache hits an encoder handled in bulk: `hits` pages found in
   * the cache, of which `unchanged` sent nothing and `deltas` went as XBZRLE
   * records of `recordBytes` bytes in all (none with a block name).
   */
  countHits(hits: number, unchanged: number, deltas: number, recordBytes: number): void {
    this.xbzrlePages += hits;
    this.skipped += unchanged;
    this.xbzrleBytes += recordBytes - deltas * RECORD_HEADER_BYTES;
    this.records.XBZRLE += deltas;
  }

  /** @internal An EOS record. */
  countEos(): void {
    this.records.EOS++;
  }

  /** @internal A MEM_SIZE record. */
  countMemSize(): void {
    this.records.MEM_SIZE++;
  }

  /** @internal Bytes handed to the transport (encoder). */
  countTransferred(bytes: number): void {
    this.transferred += bytes;
  }

  /** Pages sent: ZERO, PAGE and XBZRLE records. */
  private get pagesSent(): number {
    return this.normal + this.duplicate + this.records.XBZRLE;
  }

  /** (hits × page size) / XBZRLE bytes; 0 when either is 0. */
  private encodingRateOf(hits: number, bytes: number): number {
    return hits === 0 || bytes === 0 ? 0 : (hits * this.pageSize) / bytes;
  }

  /** `ram.normal-bytes`: page size × PAGE records. */
  get normalBytes(): number {
    return this.normal * this.pageSize;
  }

  /** Cache misses per page sent (ZERO, PAGE or XBZRLE record); 0 before any. Per rate period with `rates: 'qemu'`. */
  get cacheMissRate(): number {
    if (this.rates === 'qemu') return this.qemuMissRate;
    const sent = this.pagesSent;
    return sent === 0 ? 0 : this.cacheMiss / sent;
  }

  /** (cache hits × page size) / `xbzrleBytes`; 0 when either is 0. Per rate period with `rates: 'qemu'`. */
  get encodingRate(): number {
    if (this.rates === 'qemu') return this.qemuEncodingRate;
    return this.encodingRateOf(this.xbzrlePages, this.xbzrleBytes);
  }

  /** The counters under QEMU's `query-migrate` key names, plus `records`. */
  toJSON(): XbzrleStatsJSON {
    const ram: XbzrleStatsJSON['ram'] = {
      transferred: this.transferred,
      duplicate: this.duplicate,
      normal: this.normal,
      'normal-bytes': this.normalBytes,
      skipped: this.skipped,
      'dirty-sync-count': this.dirtySyncCount,
    };
    if (this.precopyBytes !== undefined) ram['precopy-bytes'] = this.precopyBytes;
    if (this.downtimeBytes !== undefined) ram['downtime-bytes'] = this.downtimeBytes;
    if (this.postcopyBytes !== undefined) ram['postcopy-bytes'] = this.postcopyBytes;
    const records: RecordCounts = { ...this.records };
    if (this.multifdFlushes > 0) records.MULTIFD_FLUSH = this.multifdFlushes;
    return {
      ram,
      'xbzrle-cache': {
        'cache-size': this.cacheSize,
        bytes: this.xbzrleBytes,
        pages: this.xbzrlePages,
        'cache-miss': this.cacheMiss,
        'cache-miss-rate': this.cacheMissRate,
        overflow: this.overflow,
        'encoding-rate': this.encodingRate,
      },
      records,
    };
  }

  /**
   * The counters as the `query-migrate` of the QEMU that wrote the stream
   * would show them: `toJSON()` without the keys that version no longer has
   * (`ram.skipped` from 9.1). `readQemuMigration` sets up its statistics for
   * the stream's QEMU version; for other statistics it equals `toJSON()`.
   */
  toQueryMigrate(): QueryMigrateJSON {
    const json: QueryMigrateJSON = this.toJSON();
    if (!this.reportSkipped) delete json.ram.skipped;
    return json;
  }
}

/** Milliseconds from a monotonic clock where there is one. */
function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}
