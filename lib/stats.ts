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
    /** Pages that hit the cache unchanged (nothing sent). */
    skipped: number;
    /** `sync()` calls (encoder) or EOS records (decoder). */
    'dirty-sync-count': number;
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
    /** Misses per page sent (cumulative). */
    'cache-miss-rate': number;
    /** Hits whose delta did not fit a page. */
    overflow: number;
    /** Page bytes per XBZRLE byte (cumulative). */
    'encoding-rate': number;
  };
  /** Records by kind (not a QEMU field). */
  records: RecordCounts;
}

/**
 * Counters like QEMU's `query-migrate` (spec: ram-stream.md §9), kept by
 * both streams. The encoder knows every one of them; the decoder counts what
 * the stream shows (it cannot see cache misses, overflows or unchanged hits,
 * which leave no record, so those stay 0 there).
 *
 * The two rates are cumulative over the whole stream, not over QEMU's
 * one-second periods.
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

  constructor(
    /** Page size of the stream. */
    readonly pageSize: number,
  ) {}

  /** `ram.normal-bytes`: page size × PAGE records. */
  get normalBytes(): number {
    return this.normal * this.pageSize;
  }

  /** Cache misses per page sent (ZERO, PAGE or XBZRLE record); 0 before any. */
  get cacheMissRate(): number {
    const sent = this.normal + this.duplicate + this.records.XBZRLE;
    return sent === 0 ? 0 : this.cacheMiss / sent;
  }

  /** (cache hits × page size) / `xbzrleBytes`; 0 when either is 0. */
  get encodingRate(): number {
    return this.xbzrlePages === 0 || this.xbzrleBytes === 0 ? 0 : (this.xbzrlePages * this.pageSize) / this.xbzrleBytes;
  }

  /** The counters under QEMU's `query-migrate` key names, plus `records`. */
  toJSON(): XbzrleStatsJSON {
    return {
      ram: {
        transferred: this.transferred,
        duplicate: this.duplicate,
        normal: this.normal,
        'normal-bytes': this.normalBytes,
        skipped: this.skipped,
        'dirty-sync-count': this.dirtySyncCount,
      },
      'xbzrle-cache': {
        'cache-size': this.cacheSize,
        bytes: this.xbzrleBytes,
        pages: this.xbzrlePages,
        'cache-miss': this.cacheMiss,
        'cache-miss-rate': this.cacheMissRate,
        overflow: this.overflow,
        'encoding-rate': this.encodingRate,
      },
      records: { ...this.records },
    };
  }
}
