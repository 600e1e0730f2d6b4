import { lstatSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { TargetBlock } from '../../format/record-parser.js';
import { copyMappedRamBlock } from '../../qemu/mapped-ram.js';
import { probeQemuMigration, readQemuMigration } from '../../qemu/migration-file.js';
import { blockFileName, FilePageStore } from '../../store/file-page-store.js';
import { fileCacheSize, outputOption, type CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { checkOutputPath, commitAll, createDir, inputError, keepCreatedDirs, openInput, removeCreatedDirs, TempFile, type Input } from '../files.js';
import { CliContext } from '../io.js';
import { Progress } from '../progress.js';
import { analyse, formatReport, reportOf, targetOption, type StatReport } from './stat.js';

export const EXTRACT_HELP = `usage: xbzrle extract MIGFILE -o DIR [--json] [options]

Rebuild every RAM block of a QEMU migration file (or of a delta) as
DIR/<block id, each '/' replaced by '_'>.bin, e.g. DIR/pc.ram.bin. Blocks are
written to temporary files and renamed into place once the whole stream has
been read. DIR is created if needed (and removed again if the run fails).
MIGFILE may be '-' (stdin), gzip- or zstd-compressed or not. A mapped-ram
file (QEMU >= 9.0 'migrate file:' with the mapped-ram capability) given by
name is copied block by block at file-copy speed; pages it does not hold stay
holes.

options:
  -o, --output DIR     output folder (required; --out is an alias)
      --json           print the statistics as JSON (as stat --json)
      --cache-size N   memory for cached pages of the output (default: 64M)
      --threads N      threads to apply records on (default: the cores, at most 8);
                       the output is the same for any N
      --target FILE    refuse what the receiving machine's QEMU would refuse:
                       FILE is a JSON array of {id, length, maxLength?,
                       resizeable?}, or a QEMU migration file (its block list)
  -f, --force          overwrite existing block files
  -q, --quiet          no summary
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

/** Longest file name (bytes) on Linux file systems. */
const NAME_MAX = 255;

export async function extract(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  if (positionals.length !== 1) throw new CliError('extract needs one MIGFILE', true);
  const dir = outputOption(o);
  if (dir === undefined) throw new CliError('extract needs -o DIR', true);
  const cacheSize = fileCacheSize(o);
  const target = await targetOption(o);
  const input = await openInput(ctx, positionals[0]);
  try {
    await createDir(ctx, dir);
  } catch (err) {
    input.stream.destroy();
    throw err;
  }
  const temps = new Map<string, TempFile>();
  const owners = new Map<string, string>(); // file name -> block
  const tempFor = (block: string): string => {
    let t = temps.get(block);
    if (t === undefined) {
      const file = blockFileName(block);
      const other = owners.get(file);
      if (other !== undefined) {
        throw new CliError(`blocks ${JSON.stringify(other)} and ${JSON.stringify(block)} would both be written to ${join(dir, file)}; nothing written`);
      }
      owners.set(file, block);
      const final = join(dir, file);
      // (Checked now, before anything is written: a name the folder cannot hold would fail only at the rename.)
      if (Buffer.byteLength(file) > NAME_MAX) {
        throw new CliError(`${final}: file name too long for block ${JSON.stringify(block)} (${Buffer.byteLength(file)} bytes, at most ${NAME_MAX}); nothing written`);
      }
      const link = lstatOrNull(final);
      if (link !== null && !link.isFile()) throw new CliError(`${final}: is not a regular file; refusing to replace it`);
      if (!o.force && link !== null) throw new CliError(`${final}: already exists (use -f to overwrite)`);
      t = new TempFile(ctx, final, join(dir, file));
      temps.set(block, t);
    }
    return t.path;
  };
  const store = new FilePageStore({ cacheSize, path: tempFor });
  try {
    // A mapped-ram file by name: each block copied straight from its page region.
    const probe = input.path !== undefined && input.compression === undefined && input.size !== undefined ? await probeQemuMigration(input.path).catch(() => null) : null;
    let report: StatReport;
    if (probe?.capabilities.includes('mapped-ram') === true) {
      input.stream.destroy();
      report = await extractMappedRam(ctx, input, o, target, tempFor);
    } else {
      report = await analyse(input, o, store, 'extract', target, ctx.io);
    }
    if (report.ramComplete === false) {
      const at = report.stoppedAt;
      const where =
        at === undefined
          ? ''
          : at.reason === 'section'
            ? ` (stopped at byte ${at.offset}, a ${at.type} section${at.idstr === undefined ? '' : ` of ${JSON.stringify(at.idstr)}`}: only the ram handler's sections are read)`
            : ` (stopped at byte ${at.offset})`;
      throw new CliError(`${input.name}: the RAM sections end before all RAM was sent${where}; nothing written`);
    }
    for (const t of temps.values()) await checkOutputPath(t.finalPath, o.force, [input.path]);
    await commitAll(ctx, temps.values(), o.force); // all of them, or none
    keepCreatedDirs(ctx);
    if (o.json) ctx.io.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else if (!o.quiet) {
      ctx.io.stdout.write(formatReport(report));
      for (const t of temps.values()) ctx.io.stdout.write(`wrote ${t.finalPath}\n`);
    }
  } catch (err) {
    await store.close();
    for (const t of temps.values()) await t.abort();
    await removeCreatedDirs(ctx);
    throw err;
  }
}

/** `extract` of a mapped-ram file: validated (bitmaps, offsets, target) without reading pages, then each block copied with holes. */
async function extractMappedRam(ctx: CliContext, input: Input, o: CommonOptions, target: TargetBlock[] | undefined, tempFor: (block: string) => string): Promise<StatReport> {
  const progress = new Progress('extract', input.size, o.quiet ? false : o.progress, ctx.io);
  try {
    const info = await readQemuMigration(input.path!, { store: null, target, pageSize: o.pageSize });
    if (info.ramComplete) {
      const file = await open(input.path!, 'r');
      try {
        let done = 0;
        for (const block of info.mappedRam ?? []) {
          if (block.shared === true) continue; // x-ignore-shared: not in the file
          const out = await open(tempFor(block.id), 'w+');
          try {
            await copyMappedRamBlock(file, block, out, info.pageSize);
          } finally {
            await out.close();
          }
          done += block.present * info.pageSize;
          progress.update(Math.min(done, input.size ?? done));
        }
      } finally {
        await file.close();
      }
    }
    progress.finish();
    return reportOf(input, input.size ?? info.stats.transferred, info);
  } catch (err) {
    progress.finish();
    throw inputError(input.name, err);
  }
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}
