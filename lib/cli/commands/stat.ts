import { open } from 'node:fs/promises';
import { RamRecordParser, type RamRecord, type TargetBlock } from '../../format/record-parser.js';
import { probeQemuMigration, readQemuMigration, type QemuMigrationInfo } from '../../qemu/migration-file.js';
import type { PageStore } from '../../store/page-store.js';
import { RamApplier } from '../../store/ram-applier.js';
import { RamLoader } from '../../store/ram-loader.js';
import { plural, type CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { InputMeter, inputError, openInput, peekInput, type Input } from '../files.js';
import { CliContext, processIo, type CliIo } from '../io.js';
import { isDeltaMagic } from '../../delta/format.js';
import { verifyDelta } from '../../delta/node.js';
import type { DeltaStats } from '../../delta/encoder.js';
import { deltaError } from './diff.js';
import { formatBytes, Progress } from '../progress.js';
import { loadTargetFile } from '../target-file.js';
import { readImageRuns } from '../image-reader.js';
import { isQemuFileMagic } from '../sniff.js';
import { DELTA_SIZE_EDGES, deltaSizeBucket } from '../../report/collect.js';
import { qemuFileSummary, streamSummary, summaryRows, type ReportSummary } from '../../report/summary.js';

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

/** What `stat --json` (and `extract --json`) print: the summary `xbzrle report` shows too. */
export type StatReport = ReportSummary;

/** The target table of `--target FILE`, or undefined without the flag. */
export async function targetOption(o: CommonOptions): Promise<TargetBlock[] | undefined> {
  return o.target === undefined ? undefined : loadTargetFile(o.target);
}

/**
 * Reads a delta or a QEMU file, validating every record; pages go to `store` (null: nowhere).
 * The progress bar is drawn on `io.stderr`.
 */
export async function analyse(input: Input, o: CommonOptions, store: PageStore | null, label: string, target?: TargetBlock[], io: CliIo = processIo()): Promise<StatReport> {
  target ??= await targetOption(o);
  const progress = new Progress(label, input.size, o.quiet ? false : o.progress, io);
  const meter = new InputMeter((n) => progress.update(n));
  const histogram = new Array<number>(DELTA_SIZE_EDGES.length).fill(0);
  const onRecord = (rec: RamRecord): void => {
    if (rec.kind === 'xbzrle') histogram[deltaSizeBucket(rec.length)]!++;
  };
  /** A RAM record stream applied to `store`, and its summary. */
  const ramStream = async (chunks: AsyncIterable<Uint8Array>): Promise<StatReport> => {
    const parser = new RamRecordParser({ pageSize: o.pageSize, target });
    const loader = new RamLoader({ pageSize: o.pageSize, store, borrow: true }); // applyAll releases each chunk
    await new RamApplier(parser, loader, onRecord).applyAll(chunks);
    await store?.finish?.();
    return streamSummary(input.name, o.pageSize, meter.bytes, loader.blocks ?? [], loader.stats.toQueryMigrate(), parser.position, histogram);
  };
  try {
    // A mapped-ram file by name: read with positioned reads (the page regions are skipped, not read through).
    if (input.path !== undefined && input.compression === undefined && input.size !== undefined) {
      const probe = await probeQemuMigration(input.path).catch(() => null);
      if (probe === null && (await startsAsRamStream(input.path))) {
        // A RAM record stream by name: read into two reused buffers, one read ahead (fresh memory
        // per chunk, as a stream's chunks are, costs a page fault per 4 KiB), each used up before
        // its reuse (records applied, a cut record kept by the parser, payloads staged by workers).
        input.stream.destroy();
        const runs = readImageRuns(input.path, 1 << 20, o.pageSize, false);
        const report = await ramStream(
          (async function* () {
            for await (const chunk of runs) {
              meter.observe(chunk);
              yield chunk;
            }
          })(),
        );
        progress.finish();
        return report;
      }
      if (probe?.capabilities.includes('mapped-ram') === true) {
        input.stream.destroy();
        const size = input.size;
        const info = await readQemuMigration(input.path, { store, onRecord, pageSize: o.pageSize, target, threads: o.threads, onProgress: (n) => progress.update(Math.min(n, size)) });
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
      const info = await readQemuMigration(chunks, { store, onRecord, pageSize: o.pageSize, target, threads: o.threads });
      report = reportOf(input, meter.bytes, info, histogram);
      await iterator.return?.();
    } else {
      report = await ramStream(chunks);
    }
    progress.finish();
    return report;
  } catch (err) {
    progress.finish();
    input.stream.destroy();
    throw inputError(input.name, err, meter.isQemuFile ? undefined : meter);
  }
}

/** False when the file starts with QEMU's "QEVM" magic (a migration file, for `readQemuMigration`). */
async function startsAsRamStream(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return !isQemuFileMagic(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** The report of a QEMU file read by `readQemuMigration` (`bytes`: input bytes read). */
export function reportOf(input: Input, bytes: number, info: QemuMigrationInfo, histogram: readonly number[] = []): StatReport {
  return qemuFileSummary(input.name, bytes, info, histogram);
}

export async function stat(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  if (positionals.length > 1) throw new CliError('stat takes at most one FILE', true);
  const opened = await openInput(ctx, positionals[0]);
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
    ctx.io.stdout.write(o.json ? JSON.stringify({ file: input.name, ...stats }, null, 2) + '\n' : formatDeltaReport(input.name, stats));
    return;
  }
  const report = await analyse(input, o, null, 'stat', undefined, ctx.io);
  ctx.io.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
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
  const layout = new Map((s.mappedRam ?? []).map((m) => [m.id, m]));
  for (const [label, value] of summaryRows(s)) {
    if (label === 'input') {
      lines.push(`${s.file}: ${value}`);
      continue;
    }
    lines.push(`  ${label.padEnd(14)} ${value}`);
    if (label === 'blocks') {
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
    }
    if (label === 'xbzrle') {
      lines.push('  delta sizes');
      const max = Math.max(...s.xbzrleSizes.map((b) => b.count));
      for (const b of s.xbzrleSizes) {
        const bar = '#'.repeat(Math.max(1, Math.round((30 * b.count) / max)));
        lines.push(`    ${`${b.from}–${b.to}`.padStart(11)} B ${String(b.count).padStart(8)}  ${bar}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}
