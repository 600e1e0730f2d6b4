import { createWriteStream } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { diffImages, type DeltaStats } from '../../delta/index.js';
import { XbzrleError } from '../../errors.js';
import { plural, type CommonOptions } from '../args.js';
import { CliError, namedError } from '../errors.js';
import { openInput, openOutput } from '../files.js';
import { CliContext } from '../io.js';
import { formatBytes, Progress } from '../progress.js';

export const DIFF_HELP = `usage: xbzrle diff OLD NEW [-o DELTA] [options]

Write a delta that turns OLD into NEW. Pages are compared one by one:
unchanged pages are skipped, pages that became all zero go as ZERO, pages
equal to another page of OLD or to an earlier page of NEW as references,
others as XBZRLE, or PAGE when the delta would not fit in a page. The delta
is a checked container (docs/delta-format.md): a header naming OLD's size and
checksum, zstd-compressed frames each with a checksum, NEW's checksum at the
end; 'xbzrle patch' refuses it when anything does not match. Pages past OLD's
end are compared with zeros. OLD may be '-' (stdin; it is copied to a
temporary file first).

options:
  -o, --output DELTA   write here (default: stdout, refused on a terminal)
      --format FORMAT  xbzrle (default), or qemu: a plain QEMU RAM record
                       stream (no header, checksums, references or compression)
      --level N        zstd level, 1 to 22 or -7 to -1 (default: 3)
      --no-compress    leave the frames uncompressed
      --block NAME     block name in the delta (default: ram)
      --page-size N    page size (default: 4096)
      --threads N      threads to compress the frames on (default: the cores,
                       at most 8; 4 at most are used); the output is the
                       same for any N
  -f, --force          overwrite DELTA; write binary to a terminal
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

/** What a delta holds, in one line: `xbzrle delta, 3 of 256 pages changed (XBZRLE 1, PAGE 1, ZERO 0, REF 1), 4.1 kB`. */
export function describeDelta(s: DeltaStats): string {
  const changed = s.xbzrle + s.page + s.zero + s.refOld + s.refNew;
  const pages = s.newSize / s.pageSize;
  const refs = s.format === 'xbzrle' ? `, REF ${s.refOld + s.refNew}` : '';
  const of = pages > 0 ? `${changed} of ${plural(pages, 'page')}` : plural(changed, 'page');
  return `${s.format} delta, page size ${s.pageSize}, ${of} changed (XBZRLE ${s.xbzrle}, PAGE ${s.page}, ZERO ${s.zero}${refs}), ${formatBytes(s.deltaBytes)}`;
}

/** A delta error as the CLI prints it: named after the delta unless it names OLD already. */
export function deltaError(name: string, err: unknown): unknown {
  if (err instanceof XbzrleError) {
    if (err.code === 'ERR_DELTA_WRONG_BASE') return new CliError(err.message);
    return new CliError(err.message.startsWith(`${name}: `) ? err.message : `${name}: ${err.message}`);
  }
  return err;
}

export async function diff(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  if (positionals.length !== 2) throw new CliError('diff needs OLD and NEW', true);
  const [oldPath, newPath] = positionals as [string, string];
  if (newPath === '-') throw new CliError('diff needs NEW as a file: its size is written first');
  const format = o.format ?? 'xbzrle';
  if (format !== 'xbzrle' && format !== 'qemu') throw new CliError(`--format must be xbzrle or qemu, not ${JSON.stringify(format)}`, true);
  if (format === 'qemu' && (o.level !== undefined || o.noCompress)) throw new CliError('--format qemu is never compressed: --level and --no-compress are for the xbzrle format', true);
  if (o.level !== undefined && o.noCompress) throw new CliError('--level and --no-compress contradict each other', true);
  const level = o.level === 0 ? 3 : o.level; // zstd's level 0 means its default, 3
  const ps = o.pageSize;
  const newStat = await stat(newPath).catch((err: unknown) => {
    throw namedError(newPath, err);
  });
  if (newStat.isDirectory()) throw new CliError(`${newPath}: is a directory`);
  if (newStat.size === 0) throw new CliError(`${newPath}: is empty (a delta describes at least one page)`);
  if (newStat.size % ps !== 0) throw new CliError(`${newPath}: size ${newStat.size} is not a multiple of the page size ${ps}`);
  let spooled: string | undefined;
  let old = oldPath;
  if (oldPath === '-') {
    // OLD's size and checksum go first: read stdin to a temporary file.
    const input = await openInput(ctx, '-');
    spooled = join(tmpdir(), `xbzrle-old-${process.pid}-${Date.now()}`);
    await pipeline(input.stream, createWriteStream(spooled, { mode: 0o600 }));
    old = spooled;
  }
  try {
    const out = await openOutput(ctx, o.output, o.force, [oldPath, newPath]);
    let progress: Progress | undefined;
    try {
      const stats = await diffImages(old, newPath, (c) => out.write(c), {
        format,
        pageSize: ps,
        block: o.block,
        compress: !o.noCompress,
        level,
        threads: o.threads,
        onProgress: (done, total) => {
          progress ??= new Progress('diff', total, o.quiet ? false : o.progress, ctx.io);
          progress.update(done);
        },
      });
      await out.commit();
      progress?.finish();
      if (!o.quiet && out.name !== 'stdout') ctx.io.stderr.write(`xbzrle: ${out.name}: ${describeDelta(stats)}\n`);
    } catch (err) {
      progress?.finish();
      await out.abort();
      if (err instanceof XbzrleError && err.code === 'ERR_INVALID_RECORD') throw new CliError(err.message);
      throw deltaError(oldPath === '-' ? 'stdin' : oldPath, err);
    }
  } finally {
    if (spooled !== undefined) await unlink(spooled).catch(() => undefined);
  }
}
