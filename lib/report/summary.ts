/**
 * The summary `xbzrle stat` prints and `xbzrle report` shows: one builder and
 * one set of rows for both, so the two never disagree.
 */
import type { RamBlock } from '../format/record-writer.js';
import { formatBytes as formatSize, plural } from '../format/sizes.js';
import type { MigrationStop, QemuMigrationInfo, RamSectionCounts } from '../qemu/migration-file.js';
import type { QueryMigrateJSON } from '../stats.js';
import { DELTA_SIZE_EDGES } from './collect.js';

export { formatSize };

/** A range of XBZRLE delta sizes and how many deltas fell in it. */
export interface SizeBucket {
  /** Smallest size in the range, bytes. */
  from: number;
  /** Largest size in the range, bytes. */
  to: number;
  /** XBZRLE records whose payload length is in the range. */
  count: number;
}

/**
 * The header and counters `xbzrle stat --json` prints: QEMU's `query-migrate`
 * shape as the version that wrote the input reports it, records, blocks, page
 * bytes, ratio, delta sizes and, for QEMU files, the container's facts.
 */
export interface ReportSummary extends QueryMigrateJSON {
  /** Input name. */
  file: string;
  /** A RAM record stream (delta) or a QEMU migration file. */
  format: 'delta' | 'qemu';
  /** Page size of the records. */
  pageSize: number;
  /** Input bytes read. */
  bytes: number;
  /** Blocks from MEM_SIZE. */
  blocks: RamBlock[];
  /** Bytes of pages the records carry: (PAGE + ZERO + XBZRLE) × page size (pages present, for mapped-ram files). */
  pageBytes: number;
  /** Bytes of the RAM records (for QEMU ≥ 8.2 files `ram.transferred` counts the whole stream; this does not). */
  ramBytes: number;
  /** pageBytes / ramBytes (0 for mapped-ram files). */
  ratio: number;
  /** XBZRLE payload lengths: counts per size range (non-empty ranges only). */
  xbzrleSizes: SizeBucket[];
  /** QEMU files: machine type. */
  machine?: string | null;
  /** QEMU files: RAM sections read. */
  sections?: RamSectionCounts;
  /** QEMU files: COMMAND records skipped, by number. */
  commands?: Record<number, number>;
  /** QEMU files: capabilities of the configuration section. */
  capabilities?: string[];
  /** QEMU files: the RAM END section was read. */
  ramComplete?: boolean;
  /** QEMU files: where reading stopped. */
  stoppedAt?: MigrationStop;
  /** QEMU files: the QEMU version that wrote it, as guessed (null: unknown). */
  qemuVersion?: QemuMigrationInfo['qemuVersion'];
  /** mapped-ram files: the layout and pages present per block. */
  mappedRam?: QemuMigrationInfo['mappedRam'];
  /** Set for a multifd main channel: what it is. */
  multifdMainChannel?: string | null;
}

/** Delta-size counts per {@link DELTA_SIZE_EDGES} bucket as size ranges, the empty ones left out. */
export function sizeBuckets(counts: readonly number[]): SizeBucket[] {
  return counts.map((count, i) => ({ from: i === 0 ? 0 : DELTA_SIZE_EDGES[i - 1]! + 1, to: DELTA_SIZE_EDGES[i]!, count })).filter((b) => b.count > 0);
}

/** The summary of a RAM record stream (`ramBytes`: bytes of its records; `sizes`: delta-size counts per bucket). */
export function streamSummary(
  file: string,
  pageSize: number,
  bytes: number,
  blocks: RamBlock[],
  stats: QueryMigrateJSON,
  ramBytes: number,
  sizes: readonly number[],
  format: 'delta' | 'qemu' = 'delta',
): ReportSummary {
  const r = stats.records;
  const pageBytes = (r.PAGE + r.ZERO + r.XBZRLE) * pageSize;
  return { file, format, pageSize, bytes, ...stats, blocks, pageBytes, ramBytes, ratio: ramBytes > 0 ? pageBytes / ramBytes : 0, xbzrleSizes: sizeBuckets(sizes) };
}

/** The summary of a QEMU file read by `readQemuMigration` (`bytes`: input bytes read; `sizes`: delta-size counts per bucket). */
export function qemuFileSummary(file: string, bytes: number, info: QemuMigrationInfo, sizes: readonly number[]): ReportSummary {
  const stats = info.stats.toQueryMigrate();
  // The RAM records' bytes: precopy + downtime where the version has them (its transferred may be the whole stream).
  const ram = stats.ram;
  const ramBytes = ram['precopy-bytes'] !== undefined && ram['downtime-bytes'] !== undefined ? ram['precopy-bytes'] + ram['downtime-bytes'] : ram.transferred;
  const s = streamSummary(file, info.pageSize, bytes, info.blocks, stats, ramBytes, sizes, 'qemu');
  if (info.mappedRam !== null) {
    s.pageBytes = info.mappedRam.reduce((n, b) => n + b.present, 0) * info.pageSize;
    s.ratio = 0;
  }
  return Object.assign(s, {
    machine: info.machine,
    qemuVersion: info.qemuVersion,
    sections: info.sections,
    commands: info.commands,
    capabilities: info.capabilities,
    ramComplete: info.ramComplete,
    stoppedAt: info.stoppedAt,
    mappedRam: info.mappedRam,
    multifdMainChannel: info.multifdMainChannel,
  });
}

/** Where reading a QEMU file stopped, in words: `byte N: FULL section "timer" (not RAM: …)`. */
export function describeStop(st: MigrationStop): string {
  const what =
    st.reason === 'section'
      ? `${st.type} section${st.idstr === undefined ? ` ${st.sectionId}` : ` "${st.idstr}"`} (not RAM: device state or another handler)`
      : st.reason === 'eof'
        ? 'the EOF marker'
        : 'the end of the input';
  return `byte ${st.offset}: ${what}`;
}

/** The QEMU version row: `10.0 (guessed from the machine type pc-i440fx-10.0)`. */
export function describeVersion(v: QemuMigrationInfo['qemuVersion'] | undefined): string {
  return v == null ? 'unknown (no versioned machine type; counters as QEMU 7.2)' : `${v.text} (${v.from === 'option' ? 'given' : `guessed from the ${v.evidence}`})`;
}

/** The `query-migrate` row: `normal …, transferred …[, precopy-bytes …, downtime-bytes …]`. */
export function describeQueryMigrate(s: ReportSummary): string {
  const ram = s.ram;
  const split = ram['precopy-bytes'] !== undefined ? `, precopy-bytes ${ram['precopy-bytes']}, downtime-bytes ${ram['downtime-bytes'] ?? 0}` : '';
  return `normal ${ram.normal}, normal-bytes ${ram['normal-bytes']}, duplicate ${ram.duplicate}, transferred ${ram.transferred}${split}`;
}

/**
 * The rows of the `xbzrle stat` table for a summary, as [label, value] pairs
 * in stat's order and wording (the block list and the delta sizes, which stat
 * prints as sub-tables, are left to the caller).
 */
export function summaryRows(s: ReportSummary): [string, string][] {
  const rows: [string, string][] = [];
  const r = s.records;
  rows.push(['input', `${s.format === 'qemu' ? 'QEMU migration stream' : 'RAM record stream (delta)'}, ${formatSize(s.bytes)}`]);
  if (s.format === 'qemu') {
    rows.push(['machine', s.machine ?? '(no configuration section)']);
    rows.push(['qemu', describeVersion(s.qemuVersion)]);
    if ((s.capabilities ?? []).length > 0) rows.push(['capabilities', s.capabilities!.join(', ')]);
    const sec = s.sections;
    const state = s.ramComplete === true ? ' (all RAM read)' : s.multifdMainChannel != null ? ' (no pages: a multifd main channel)' : ' (RAM incomplete)';
    if (sec !== undefined) rows.push(['ram sections', `START ${sec.start}, PART ${sec.part}, END ${sec.end}${state}`]);
    if (s.multifdMainChannel != null) rows.push(['multifd', s.multifdMainChannel]);
    if (s.stoppedAt !== undefined) rows.push(['stopped at', describeStop(s.stoppedAt)]);
  }
  rows.push(['page size', String(s.pageSize)]);
  rows.push(['blocks', s.blocks.length === 0 ? '(no MEM_SIZE record)' : String(s.blocks.length)]);
  rows.push(['records', `PAGE ${r.PAGE}  ZERO ${r.ZERO}  XBZRLE ${r.XBZRLE}  MEM_SIZE ${r.MEM_SIZE}  EOS ${r.EOS}${r.MULTIFD_FLUSH === undefined ? '' : `  MULTIFD_FLUSH ${r.MULTIFD_FLUSH}`}`]);
  if (s.mappedRam != null) {
    const present = s.mappedRam.reduce((n, m) => n + m.present, 0);
    const pages = s.mappedRam.reduce((n, m) => n + m.pages, 0);
    rows.push(['mapped-ram', `${present} of ${pages} pages in the file (${formatSize(s.pageBytes)}), at fixed offsets; the others were never written (zeros)`]);
  } else {
    rows.push(['bytes', `${s.ramBytes} in RAM records, carrying ${formatSize(s.pageBytes)} of pages (ratio ${s.ratio.toFixed(2)}:1)`]);
  }
  const x = s['xbzrle-cache'];
  if (r.XBZRLE > 0) rows.push(['xbzrle', `${plural(r.XBZRLE, 'delta')}, ${plural(x.bytes, 'byte')} (${(x.bytes / r.XBZRLE).toFixed(1)} per page, encoding rate ${x['encoding-rate'].toFixed(2)})`]);
  const what = s.mappedRam != null ? ' (of the file: QEMU counted every page write)' : s.multifdMainChannel != null ? ' (of this channel)' : '';
  rows.push(['query-migrate', `${describeQueryMigrate(s)}${what}`]);
  return rows;
}
