import { lstatSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { blockFileName, FilePageStore } from '../../store/file-page-store.js';
import { fileCacheSize, outputOption, type CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { checkOutputPath, createDir, keepCreatedDirs, openInput, removeCreatedDirs, TempFile } from '../files.js';
import { analyse, formatReport } from './stat.js';

export const EXTRACT_HELP = `usage: xbzrle extract MIGFILE -o DIR [--json] [options]

Rebuild every RAM block of a QEMU migration file (or of a delta) as
DIR/<block id, each '/' replaced by '_'>.bin, e.g. DIR/pc.ram.bin. Blocks are
written to temporary files and renamed into place once the whole stream has
been read. DIR is created if needed (and removed again if the run fails).
MIGFILE may be '-' (stdin), gzip- or zstd-compressed or not.

options:
  -o, --output DIR     output folder (required; --out is an alias)
      --json           print the statistics as JSON (as stat --json)
      --cache-size N   memory for cached pages of the output (default: 64M)
  -f, --force          overwrite existing block files
  -q, --quiet          no summary
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

export async function extract(positionals: string[], o: CommonOptions): Promise<void> {
  if (positionals.length !== 1) throw new CliError('extract needs one MIGFILE', true);
  const dir = outputOption(o);
  if (dir === undefined) throw new CliError('extract needs -o DIR', true);
  const cacheSize = fileCacheSize(o);
  const input = await openInput(positionals[0]);
  try {
    await createDir(dir);
  } catch (err) {
    input.stream.destroy();
    throw err;
  }
  const temps = new Map<string, TempFile>();
  const owners = new Map<string, string>(); // file name -> block
  const store = new FilePageStore({
    cacheSize,
    path: (block) => {
      let t = temps.get(block);
      if (t === undefined) {
        const file = blockFileName(block);
        const other = owners.get(file);
        if (other !== undefined) {
          throw new CliError(`blocks ${JSON.stringify(other)} and ${JSON.stringify(block)} would both be written to ${join(dir, file)}; nothing written`);
        }
        owners.set(file, block);
        const final = join(dir, file);
        const link = lstatOrNull(final);
        if (link !== null && !link.isFile()) throw new CliError(`${final}: is not a regular file; refusing to replace it`);
        if (!o.force && link !== null) throw new CliError(`${final}: already exists (use -f to overwrite)`);
        t = new TempFile(final, join(dir, file));
        temps.set(block, t);
      }
      return t.path;
    },
  });
  try {
    const report = await analyse(input, o, store, 'extract');
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
    for (const t of temps.values()) await t.commit(o.force);
    keepCreatedDirs();
    if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else if (!o.quiet) {
      process.stdout.write(formatReport(report));
      for (const t of temps.values()) process.stdout.write(`wrote ${t.finalPath}\n`);
    }
  } catch (err) {
    await store.close();
    for (const t of temps.values()) await t.abort();
    await removeCreatedDirs();
    throw err;
  }
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}
