import { RamRecordParser, type RamRecord, type TargetBlock } from '../../format/record-parser.js';
import type { RamBlock } from '../../format/record-writer.js';
import { probeQemuMigration, readQemuMigration, type QemuMigrationInfo } from '../../qemu/migration-file.js';
import type { QueryMigrateJSON } from '../../stats.js';
import type { PageStore } from '../../store/page-store.js';
import { RamLoader } from '../../store/ram-loader.js';
import { plural, type CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { InputMeter, inputError, openInput, peekInput, type Input } from '../files.js';
import { isDeltaMagic } from '../../delta/format.js';
import { verifyDelta } from '../../delta/node.js';
import type { DeltaStats } from '../../delta/encoder.js';
import { deltaError } from './diff.js';
import { formatBytes, Progress } from '../progress.js';
import { loadTargetFile } from '../target-file.js';

export const STAT_HELP = `usage: xbzrle stat [FILE] [--json] [options]

Counts and statistics of a delta file (made by diff: its header, every frame's
checksum, every record and its trailer are checked), a RAM record stream (a
plain delta, encode's output) or a QEMU migration file (recognised by its
"QEVM" magic); stdin when FILE is omitted or '-'.
gzip- or zstd-compressed input is read as it is.
Every record is checked; XBZRLE deltas are validated without rebuilding pages.

options:
      --json           print JSON: QEMU's query-migrate shape (ram, xbzrle-cache)
                       plus records, blocks, sizes and, for QEMU files, sections
      --page-size N    page size of a delta (default: 4096; QEMU files say theirs)
      --target FILE    check the stream against the receiving machine's RAM
                       blocks as QEMU's loader does: FILE is a JSON array of
                       {id, length, maxLength?, resizeable?}, or a QEMU
                       migration file whose block list (MEM_SIZE) is used
  -q, --quiet          no progress bar
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

/** Upper bounds of the XBZRLE payload size histogram buckets. */
const EDGES = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** What `stat --json` (and `extract --json`) print. */
export interface StatReport extends QueryMigrateJSON {
  file: string;
  format: 'delta' | 'qemu';
  pageSize: number;
  /** Input bytes read. */
  bytes: number;
  blocks: RamBlock[];
  /** Bytes of pages the records carry: (PAGE + ZERO + XBZRLE) × page size. */
  pageBytes: number;
  /** Bytes of the RAM records (for QEMU ≥ 8.2 files `ram.transferred` counts the whole stream; this does not). */
  ramBytes: number;
  /** pageBytes / bytes of RAM records. */
  ratio: number;
  /** XBZRLE payload lengths: counts per size range. */
  xbzrleSizes: { from: number; to: number; count: number }[];
  machine?: string | null;
  sections?: QemuMigrationInfo['sections'];
  commands?: Record<number, number>;
  capabilities?: string[];
  ramComplete?: boolean;
  stoppedAt?: QemuMigrationInfo['stoppedAt'];
  /** The QEMU version that wrote the file, as guessed (null: unknown). */
  qemuVersion?: QemuMigrationInfo['qemuVersion'];
  /** A mapped-ram file's layout and pages present per block. */
  mappedRam?: QemuMigrationInfo['mappedRam'];
  /** Set for a multifd main channel: what it is. */
  multifdMainChannel?: string | null;
}

/** The target table of `--target FILE`, or undefined without the flag. */
export async function targetOption(o: CommonOptions): Promise<TargetBlock[] | undefined> {
  return o.target === undefined ? undefined : loadTargetFile(o.target);
}

/** Reads a delta or a QEMU file, validating every record; pages go to `store` (null: nowhere). */
export async function analyse(input: Input, o: CommonOptions, store: PageStore | null, label: string, target?: TargetBlock[]): Promise<StatReport> {
  target ??= await targetOption(o);
  const progress = new Progress(label, input.size, o.quiet ? false : o.progress);
  const meter = new InputMeter((n) => progress.update(n));
  const histogram = new Array<number>(EDGES.length).fill(0);
  const onRecord = (rec: RamRecord): void => {
    if (rec.kind === 'xbzrle') histogram[bucket(rec.length)]!++;
  };
  try {
    // A mapped-ram file by name: read with positioned reads (the page regions are skipped, not read through).
    if (input.path !== undefined && input.compression === undefined && input.size !== undefined) {
      const probe = await probeQemuMigration(input.path).catch(() => null);
      if (probe?.capabilities.includes('mapped-ram') === true) {
        input.stream.destroy();
        const size = input.size;
        const info = await readQemuMigration(input.path, { store, onRecord, pageSize: o.pageSize, target, onProgress: (n) => progress.update(Math.min(n, size)) });
        progress.finish();
        return reportOf(input, size, info, histogram);
      }
    }
    const body = input.stream.pipe(meter);
    input.stream.on('error', (err) => meter.destroy(err));
    const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
    // Peek at the first bytes to tell a QEMU file from a delta.
    const head: Uint8Array[] = [];
    let headBytes = 0;
    while (headBytes < 4) {
      const r = await iterator.next();
      if (r.done === true) break;
      head.push(r.value);
      headBytes += r.value.length;
    }
    const chunks = (async function* () {
      yield* head;
      for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) yield r.value;
    })();
    let report: StatReport;
    if (meter.isQemuFile) {
      const info = await readQemuMigration(chunks, { store, onRecord, pageSize: o.pageSize, target });
      report = reportOf(input, meter.bytes, info, histogram);
      await iterator.return?.();
    } else {
      const parser = new RamRecordParser({ pageSize: o.pageSize, target });
      const loader = new RamLoader({ pageSize: o.pageSize, store });
      for await (const chunk of chunks) {
        parser.push(chunk);
        for (let rec = parser.next(); rec !== null; rec = parser.next()) {
          onRecord(rec);
          const pending = loader.apply(rec);
          if (pending !== undefined) await pending;
        }
      }
      parser.end();
      loader.stats.transferred = parser.position;
      await store?.finish?.();
      report = build(input, o.pageSize, meter.bytes, loader.blocks ?? [], loader.stats.toQueryMigrate(), parser.position, histogram, 'delta');
    }
    progress.finish();
    return report;
  } catch (err) {
    progress.finish();
    input.stream.destroy();
    throw inputError(input.name, err, meter.isQemuFile ? undefined : meter);
  }
}

function bucket(length: number): number {
  let i = 0;
  while (i < EDGES.length - 1 && length > EDGES[i]!) i++;
  return i;
}

/** The report of a QEMU file read by `readQemuMigration` (`bytes`: input bytes read). */
export function reportOf(input: Input, bytes: number, info: QemuMigrationInfo, histogram: number[] = new Array<number>(EDGES.length).fill(0)): StatReport {
  const stats = info.stats.toQueryMigrate();
  // The RAM records' bytes: precopy + downtime where the version has them (its transferred may be the whole stream).
  const ram = stats.ram;
  const ramBytes = ram['precopy-bytes'] !== undefined && ram['downtime-bytes'] !== undefined ? ram['precopy-bytes'] + ram['downtime-bytes'] : ram.transferred;
  const report = build(input, info.pageSize, bytes, info.blocks, stats, ramBytes, histogram, 'qemu');
  if (info.mappedRam !== null) {
    report.pageBytes = info.mappedRam.reduce((n, b) => n + b.present, 0) * info.pageSize;
    report.ratio = 0;
  }
  return Object.assign(report, {
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

function build(input: Input, pageSize: number, bytes: number, blocks: RamBlock[], stats: QueryMigrateJSON, ramBytes: number, histogram: number[], format: 'delta' | 'qemu'): StatReport {
  const r = stats.records;
  const pageBytes = (r.PAGE + r.ZERO + r.XBZRLE) * pageSize;
  return {
    file: input.name,
    format,
    pageSize,
    bytes,
    ...stats,
    blocks,
    pageBytes,
    ramBytes,
    ratio: ramBytes > 0 ? pageBytes / ramBytes : 0,
    xbzrleSizes: histogram.map((count, i) => ({ from: i === 0 ? 0 : EDGES[i - 1]! + 1, to: EDGES[i]!, count })).filter((b) => b.count > 0),
  };
}

export async function stat(positionals: string[], o: CommonOptions): Promise<void> {
  if (positionals.length > 1) throw new CliError('stat takes at most one FILE', true);
  const opened = await openInput(positionals[0]);
  let peeked;
  try {
    peeked = await peekInput(opened);
  } catch (err) {
    opened.stream.destroy();
    throw inputError(opened.name, err);
  }
  const { head, input } = peeked;
  if (isDeltaMagic(head)) {
    // A delta file of this package's format: every frame, record and the trailer checked.
    if (o.target !== undefined) throw new CliError('--target applies to RAM record streams and QEMU migration files, not to delta files');
    let stats: DeltaStats;
    try {
      stats = await verifyDelta(input.stream, undefined, { pageSize: o.pageSizeSet ? o.pageSize : undefined });
    } catch (err) {
      input.stream.destroy();
      throw deltaError(input.name, err);
    }
    process.stdout.write(o.json ? JSON.stringify({ file: input.name, ...stats }, null, 2) + '\n' : formatDeltaReport(input.name, stats));
    return;
  }
  const report = await analyse(input, o, null, 'stat');
  process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
}

/** The human-readable `stat` of a delta file of this package's format. */
export function formatDeltaReport(file: string, s: DeltaStats): string {
  const row = (k: string, v: string): string => `  ${k.padEnd(14)} ${v}\n`;
  const digest = (d: string | undefined): string => (d === undefined ? '' : `, digest ${d}`);
  const changed = s.xbzrle + s.page + s.zero + s.refOld + s.refNew;
  return (
    `${file}: xbzrle delta file, ${formatBytes(s.deltaBytes)} (header, ${plural(s.frames, 'frame')} and trailer checked)\n` +
    row('page size', String(s.pageSize)) +
    row('OLD (base)', `${formatBytes(s.oldSize)}${digest(s.oldDigest)}`) +
    row('NEW', `${formatBytes(s.newSize)}${digest(s.newDigest)}`) +
    row('pages', `${changed} of ${plural(s.newSize / s.pageSize, 'page')} of NEW changed`) +
    row('records', `PAGE ${s.page}  ZERO ${s.zero}  XBZRLE ${s.xbzrle}  REF ${s.refOld + s.refNew} (to OLD ${s.refOld}, to NEW ${s.refNew})`) +
    row('bytes', `${formatBytes(s.rawBytes)} of records, stored in ${formatBytes(s.deltaBytes)} (frames compressed when that is smaller)`)
  );
}

/** The human-readable `stat` table. */
export function formatReport(s: StatReport): string {
  const lines: string[] = [];
  const row = (k: string, v: string): void => void lines.push(`  ${k.padEnd(14)} ${v}`);
  const r = s.records;
  lines.push(`${s.file}: ${s.format === 'qemu' ? 'QEMU migration stream' : 'RAM record stream (delta)'}, ${formatBytes(s.bytes)}`);
  if (s.format === 'qemu') {
    row('machine', s.machine ?? '(no configuration section)');
    const v = s.qemuVersion;
    row('qemu', v == null ? 'unknown (no versioned machine type; counters as QEMU 7.2)' : `${v.text} (${v.from === 'option' ? 'given' : `guessed from the ${v.evidence}`})`);
    if ((s.capabilities ?? []).length > 0) row('capabilities', s.capabilities!.join(', '));
    const sec = s.sections!;
    const state = s.ramComplete === true ? ' (all RAM read)' : s.multifdMainChannel != null ? ' (no pages: a multifd main channel)' : ' (RAM incomplete)';
    row('ram sections', `START ${sec.start}, PART ${sec.part}, END ${sec.end}${state}`);
    if (s.multifdMainChannel != null) row('multifd', s.multifdMainChannel);
    const st = s.stoppedAt!;
    const what =
      st.reason === 'section'
        ? `${st.type} section${st.idstr === undefined ? ` ${st.sectionId}` : ` "${st.idstr}"`} (not RAM: device state or another handler)`
        : st.reason === 'eof'
          ? 'the EOF marker'
          : 'the end of the input';
    row('stopped at', `byte ${st.offset}: ${what}`);
  }
  row('page size', String(s.pageSize));
  row('blocks', s.blocks.length === 0 ? '(no MEM_SIZE record)' : String(s.blocks.length));
  const layout = new Map((s.mappedRam ?? []).map((m) => [m.id, m]));
  for (const b of s.blocks) {
    const m = layout.get(b.id);
    const where =
      m === undefined
        ? ''
        : m.shared === true
          ? '  shared (not in the file)'
          : `  ${`${m.present}/${m.pages} pages`.padStart(17)}  bitmap at 0x${m.bitmapOffset.toString(16)}, pages at 0x${m.pagesOffset.toString(16)}${m.ignoredBits > 0 ? `, ${plural(m.ignoredBits, 'bitmap bit')} past the end ignored` : ''}`;
    lines.push(`    ${b.id.padEnd(28)} ${formatBytes(b.length).padStart(10)}${where}`);
  }
  row('records', `PAGE ${r.PAGE}  ZERO ${r.ZERO}  XBZRLE ${r.XBZRLE}  MEM_SIZE ${r.MEM_SIZE}  EOS ${r.EOS}${r.MULTIFD_FLUSH === undefined ? '' : `  MULTIFD_FLUSH ${r.MULTIFD_FLUSH}`}`);
  if (s.mappedRam != null) {
    const present = s.mappedRam.reduce((n, m) => n + m.present, 0);
    const pages = s.mappedRam.reduce((n, m) => n + m.pages, 0);
    row('mapped-ram', `${present} of ${pages} pages in the file (${formatBytes(s.pageBytes)}), at fixed offsets; the others were never written (zeros)`);
  } else {
    row('bytes', `${s.ramBytes} in RAM records, carrying ${formatBytes(s.pageBytes)} of pages (ratio ${s.ratio.toFixed(2)}:1)`);
  }
  const x = s['xbzrle-cache'];
  if (r.XBZRLE > 0) {
    row('xbzrle', `${plural(r.XBZRLE, 'delta')}, ${plural(x.bytes, 'byte')} (${(x.bytes / r.XBZRLE).toFixed(1)} per page, encoding rate ${x['encoding-rate'].toFixed(2)})`);
    lines.push('  delta sizes');
    const max = Math.max(...s.xbzrleSizes.map((b) => b.count));
    for (const b of s.xbzrleSizes) {
      const bar = '#'.repeat(Math.max(1, Math.round((30 * b.count) / max)));
      lines.push(`    ${`${b.from}–${b.to}`.padStart(11)} B ${String(b.count).padStart(8)}  ${bar}`);
    }
  }
  const split = s.ram['precopy-bytes'] === undefined ? '' : `, precopy-bytes ${s.ram['precopy-bytes']}, downtime-bytes ${s.ram['downtime-bytes']}`;
  const what = s.mappedRam != null ? ' (of the file: QEMU counted every page write)' : s.multifdMainChannel != null ? ' (of this channel)' : '';
  row('query-migrate', `normal ${s.ram.normal}, normal-bytes ${s.ram['normal-bytes']}, duplicate ${s.ram.duplicate}, transferred ${s.ram.transferred}${split}${what}`);
  return lines.join('\n') + '\n';
}
