import { RamRecordParser, type RamRecord } from '../../format/record-parser.js';
import type { RamBlock } from '../../format/record-writer.js';
import { readQemuMigration, type QemuMigrationInfo } from '../../qemu/migration-file.js';
import type { XbzrleStatsJSON } from '../../stats.js';
import type { PageStore } from '../../store/page-store.js';
import { RamLoader } from '../../store/ram-loader.js';
import { plural, type CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { InputMeter, inputError, openInput, type Input } from '../files.js';
import { formatBytes, Progress } from '../progress.js';

export const STAT_HELP = `usage: xbzrle stat [FILE] [--json] [options]

Counts and statistics of a delta (a RAM record stream) or of a QEMU migration
file (recognised by its "QEVM" magic); stdin when FILE is omitted or '-'.
gzip- or zstd-compressed input is read as it is.
Every record is checked; XBZRLE deltas are validated without rebuilding pages.

options:
      --json           print JSON: QEMU's query-migrate shape (ram, xbzrle-cache)
                       plus records, blocks, sizes and, for QEMU files, sections
      --page-size N    page size of a delta (default: 4096; QEMU files say theirs)
  -q, --quiet          no progress bar
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

/** Upper bounds of the XBZRLE payload size histogram buckets. */
const EDGES = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** What `stat --json` (and `extract --json`) print. */
export interface StatReport extends XbzrleStatsJSON {
  file: string;
  format: 'delta' | 'qemu';
  pageSize: number;
  /** Input bytes read. */
  bytes: number;
  blocks: RamBlock[];
  /** Bytes of pages the records carry: (PAGE + ZERO + XBZRLE) × page size. */
  pageBytes: number;
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
}

/** Reads a delta or a QEMU file, validating every record; pages go to `store` (null: nowhere). */
export async function analyse(input: Input, o: CommonOptions, store: PageStore | null, label: string): Promise<StatReport> {
  const progress = new Progress(label, input.size, o.quiet ? false : o.progress);
  const meter = new InputMeter((n) => progress.update(n));
  const histogram = new Array<number>(EDGES.length).fill(0);
  const onRecord = (rec: RamRecord): void => {
    if (rec.kind === 'xbzrle') histogram[bucket(rec.length)]!++;
  };
  try {
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
      const info = await readQemuMigration(chunks, { store, onRecord, pageSize: o.pageSize });
      report = build(input, info.pageSize, meter.bytes, info.blocks, info.stats.toJSON(), histogram, 'qemu');
      Object.assign(report, {
        machine: info.machine,
        sections: info.sections,
        commands: info.commands,
        capabilities: info.capabilities,
        ramComplete: info.ramComplete,
        stoppedAt: info.stoppedAt,
      });
      await iterator.return?.();
    } else {
      const parser = new RamRecordParser({ pageSize: o.pageSize });
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
      report = build(input, o.pageSize, meter.bytes, loader.blocks ?? [], loader.stats.toJSON(), histogram, 'delta');
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

function build(input: Input, pageSize: number, bytes: number, blocks: RamBlock[], stats: XbzrleStatsJSON, histogram: number[], format: 'delta' | 'qemu'): StatReport {
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
    ratio: stats.ram.transferred > 0 ? pageBytes / stats.ram.transferred : 0,
    xbzrleSizes: histogram.map((count, i) => ({ from: i === 0 ? 0 : EDGES[i - 1]! + 1, to: EDGES[i]!, count })).filter((b) => b.count > 0),
  };
}

export async function stat(positionals: string[], o: CommonOptions): Promise<void> {
  if (positionals.length > 1) throw new CliError('stat takes at most one FILE', true);
  const input = await openInput(positionals[0]);
  const report = await analyse(input, o, null, 'stat');
  process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
}

/** The human-readable `stat` table. */
export function formatReport(s: StatReport): string {
  const lines: string[] = [];
  const row = (k: string, v: string): void => void lines.push(`  ${k.padEnd(14)} ${v}`);
  const r = s.records;
  lines.push(`${s.file}: ${s.format === 'qemu' ? 'QEMU migration stream' : 'RAM record stream (delta)'}, ${formatBytes(s.bytes)}`);
  if (s.format === 'qemu') {
    row('machine', s.machine ?? '(no configuration section)');
    if ((s.capabilities ?? []).length > 0) row('capabilities', s.capabilities!.join(', '));
    const sec = s.sections!;
    row('ram sections', `START ${sec.start}, PART ${sec.part}, END ${sec.end}${s.ramComplete === true ? ' (all RAM read)' : ' (RAM incomplete)'}`);
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
  for (const b of s.blocks) lines.push(`    ${b.id.padEnd(28)} ${formatBytes(b.length).padStart(10)}`);
  row('records', `PAGE ${r.PAGE}  ZERO ${r.ZERO}  XBZRLE ${r.XBZRLE}  MEM_SIZE ${r.MEM_SIZE}  EOS ${r.EOS}`);
  row('bytes', `${s.ram.transferred} in RAM records, carrying ${formatBytes(s.pageBytes)} of pages (ratio ${s.ratio.toFixed(2)}:1)`);
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
  row('query-migrate', `normal ${s.ram.normal}, normal-bytes ${s.ram['normal-bytes']}, duplicate ${s.ram.duplicate}, transferred ${s.ram.transferred}`);
  return lines.join('\n') + '\n';
}
