import { copyFile, stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FilePageStore } from '../../store/file-page-store.js';
import { XbzrleDecodeStream } from '../../stream/decode-stream.js';
import { fileCacheSize, plural, type CommonOptions } from '../args.js';
import { SingleBlockStore } from '../block-filter.js';
import { CliError } from '../errors.js';
import { checkOutputPath, InputMeter, inputError, openInput, TempFile } from '../files.js';
import { Progress } from '../progress.js';

export const PATCH_HELP = `usage: xbzrle patch OLD [DELTA] -o NEW [options]

Apply DELTA (stdin when omitted or '-') to OLD, writing NEW. OLD is never
modified: it is copied to a temporary file next to NEW, patched there, and
renamed to NEW only when the whole delta applied. NEW takes the size the
delta's MEM_SIZE record gives.

options:
  -o, --output NEW     the patched image (required)
      --block NAME     which block of the delta to apply; the others are checked
                       and dropped (default: the delta's only block)
      --page-size N    page size (default: 4096)
      --cache-size N   memory for cached pages of the output (default: 64M)
  -f, --force          overwrite NEW
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

export async function patch(positionals: string[], o: CommonOptions): Promise<void> {
  if (positionals.length < 1 || positionals.length > 2) throw new CliError('patch needs OLD and, optionally, DELTA', true);
  const [oldPath, deltaPath] = positionals as [string, string | undefined];
  if (o.output === undefined || o.output === '-') throw new CliError('patch needs -o NEW (a file: it is written in place)', true);
  if (oldPath === '-') throw new CliError('patch needs OLD as a file');
  const cacheSize = fileCacheSize(o);
  const oldStat = await stat(oldPath).catch(() => null);
  if (oldStat === null) throw new CliError(`${oldPath}: no such file`);
  // A regular file, or /dev/null for a delta made against nothing (`diff /dev/null NEW`).
  if (!oldStat.isFile() && !(oldStat.isCharacterDevice() && oldStat.size === 0 && oldPath === '/dev/null')) throw new CliError(`${oldPath}: not a regular file`);
  const newPath = o.output;
  const out = await checkOutputPath(newPath, o.force, [oldPath, deltaPath]);
  const input = await openInput(deltaPath);
  const temp = new TempFile(out.path, newPath);
  const progress = new Progress('patch', input.size, o.quiet ? false : o.progress);
  const file = new FilePageStore({ path: () => temp.path, cacheSize });
  const store = new SingleBlockStore(file, input.name, o.block);
  let meter: InputMeter | undefined;
  try {
    await copyFile(oldPath, temp.path);
    const dec = new XbzrleDecodeStream({ store, pageSize: o.pageSize, emitPages: false });
    meter = new InputMeter((n) => progress.update(n));
    await pipeline(input.stream, meter, dec, new Writable({ objectMode: true, write: (_p, _e, cb) => cb() }));
    if (o.block !== undefined) store.checkFound();
    await temp.commit(o.force);
    progress.finish();
    if (!o.quiet) {
      const r = dec.stats.records;
      process.stderr.write(`xbzrle: ${newPath}: applied ${plural(r.XBZRLE + r.PAGE + r.ZERO, 'page')} (XBZRLE ${r.XBZRLE}, PAGE ${r.PAGE}, ZERO ${r.ZERO})\n`);
    }
  } catch (err) {
    progress.finish();
    await file.close();
    await temp.abort();
    throw inputError(input.name, err, meter);
  }
}
