import { copyFile, stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isDeltaMagic, patchImage, type DeltaStats } from '../../delta/index.js';
import { FilePageStore } from '../../store/file-page-store.js';
import { fileCacheSize, plural, type CommonOptions } from '../args.js';
import { SingleBlockStore } from '../block-filter.js';
import { CliError } from '../errors.js';
import { targetOption } from './stat.js';
import { checkOutputPath, InputMeter, inputError, openInput, peekInput, TempFile, type Input } from '../files.js';
import { CliContext } from '../io.js';
import { Progress } from '../progress.js';
import { deltaError } from './diff.js';

export const PATCH_HELP = `usage: xbzrle patch OLD [DELTA...] -o NEW [options]

Apply DELTA (stdin when omitted or '-') to OLD, writing NEW; several deltas
are applied in order (a chain: each made against the result of the one
before). NEW is built in a temporary file next to it (zero pages left as
holes) and renamed into place only when every check passed: each delta's
checksums, OLD being the base the delta was made from (its size and checksum),
the page size, and NEW's checksum. Otherwise nothing is written and the
message says which check failed. OLD is never modified. Plain RAM record
streams (deltas made with --format qemu) are applied as they are: they carry
no checksum.

options:
  -o, --output NEW     the patched image (required)
      --no-verify      do not compare OLD's checksum with the delta's base (its
                       size still must match; NEW's checksum is still checked)
      --page-size N    refuse a delta of another page size (plain streams are
                       read with it; default: 4096)
      --block NAME     plain streams: which block to apply; the others are
                       checked and dropped (default: the delta's only block)
      --cache-size N   plain streams: memory for cached pages of the output
                       (default: 64M)
      --target FILE    plain streams: check them against the receiving
                       machine's RAM blocks as QEMU's loader does (FILE: a JSON
                       array of {id, length, maxLength?, resizeable?}, or a
                       QEMU migration file whose block list is used)
      --threads N      threads to decompress the frames on (default: the
                       cores, at most 8; 4 at most are used); the output is
                       the same for any N
  -f, --force          overwrite NEW
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;


export async function patch(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  if (positionals.length < 1) throw new CliError('patch needs OLD and, optionally, DELTA', true);
  const [oldPath, ...rest] = positionals as [string, ...string[]];
  const deltaPaths = rest.length === 0 ? ['-'] : rest;
  if (o.output === undefined || o.output === '-') throw new CliError('patch needs -o NEW (a file: it is written in place)', true);
  if (oldPath === '-') throw new CliError('patch needs OLD as a file');
  if (deltaPaths.filter((d) => d === '-').length > 1) throw new CliError('stdin can be only one of the deltas');
  const oldStat = await stat(oldPath).catch(() => null);
  if (oldStat === null) throw new CliError(`${oldPath}: no such file`);
  if (!oldStat.isFile() && !(oldStat.isCharacterDevice() && oldStat.size === 0 && oldPath === '/dev/null')) throw new CliError(`${oldPath}: not a regular file`);
  const inputs: Input[] = [];
  try {
    // Which format each delta is in: its first bytes (read ahead, still yielded by its stream).
    const kinds: boolean[] = [];
    for (const d of deltaPaths) {
      const opened = await openInput(ctx, d);
      inputs.push(opened);
      const { head, input } = await peekInput(opened).catch((err: unknown) => {
        throw inputError(opened.name, err);
      });
      inputs[inputs.length - 1] = input;
      kinds.push(isDeltaMagic(head));
    }
    if (inputs.length === 1 && kinds[0] === false) return await patchPlain(ctx, oldPath, inputs[0]!, o);
    const plainAt = kinds.indexOf(false);
    if (plainAt >= 0) throw new CliError(`${inputs[plainAt]!.name}: a plain RAM record stream cannot be part of a chain (make the deltas without --format qemu)`);
    if (o.target !== undefined) throw new CliError('--target applies to plain RAM record streams only');
    const newPath = o.output;
    const out = await checkOutputPath(newPath, o.force, [oldPath, ...deltaPaths]);
    if (out.special) throw new CliError(`${newPath}: not a regular file (patch writes NEW through a temporary file)`);
    let progress: Progress | undefined;
    let stats: DeltaStats[];
    let current = 0;
    try {
      stats = await patchImage(oldPath, inputs.map((i) => i.stream), out.path, {
        force: true,
        verify: !o.noVerify,
        // Named and removed on a signal like every temp file of the command.
        tempPath: () => new TempFile(ctx, out.path, newPath).path,
        pageSize: o.pageSizeSet ? o.pageSize : undefined,
        threads: o.threads,
        onProgress: (done, total, index) => {
          // A chain is applied in one pass (one bar); one applied delta by delta starts a bar per delta.
          if (progress === undefined || index !== current) {
            progress?.finish();
            const label = inputs.length === 1 ? 'patch' : index === inputs.length - 1 && current === 0 ? `patch (${inputs.length} deltas)` : `patch ${index + 1}/${inputs.length}`;
            progress = new Progress(label, total, o.quiet ? false : o.progress, ctx.io);
          }
          current = index;
          progress.update(done);
        },
      });
    } catch (err) {
      progress?.finish();
      const at = (err as { deltaIndex?: number } | null)?.deltaIndex ?? current;
      throw deltaError(inputs[at]?.name ?? 'delta', err);
    }
    progress?.finish();
    if (!o.quiet) {
      const t = stats.reduce((a, s) => ({ x: a.x + s.xbzrle, p: a.p + s.page, z: a.z + s.zero, r: a.r + s.refOld + s.refNew }), { x: 0, p: 0, z: 0, r: 0 });
      const chain = stats.length > 1 ? ` from ${stats.length} deltas` : '';
      ctx.io.stderr.write(`xbzrle: ${newPath}: applied ${plural(t.x + t.p + t.z + t.r, 'page')}${chain} (XBZRLE ${t.x}, PAGE ${t.p}, ZERO ${t.z}, REF ${t.r}), checksums match\n`);
    }
  } finally {
    for (const i of inputs) i.stream.destroy();
  }
}

/** A plain RAM record stream (`diff --format qemu`): OLD copied next to NEW, the records applied there. */
async function patchPlain(ctx: CliContext, oldPath: string, input: Input, o: CommonOptions): Promise<void> {
  const cacheSize = fileCacheSize(o);
  const target = await targetOption(o); // a bad FILE fails before anything is written
  const newPath = o.output!;
  const out = await checkOutputPath(newPath, o.force, [oldPath, input.path]);
  const temp = new TempFile(ctx, out.path, newPath);
  const progress = new Progress('patch', input.size, o.quiet ? false : o.progress, ctx.io);
  const file = new FilePageStore({ path: () => temp.path, cacheSize });
  const store = new SingleBlockStore(file, input.name, o.block);
  let meter: InputMeter | undefined;
  try {
    await copyFile(oldPath, temp.path);
    // Loaded here: the stream classes bring readable-stream (~15 ms of every patch's start), which
    // only a plain stream needs.
    const { XbzrleDecodeStream } = await import('../../stream/decode-stream.js');
    const dec = new XbzrleDecodeStream({ store, pageSize: o.pageSize, emitPages: false, target });
    meter = new InputMeter((n) => progress.update(n));
    await pipeline(input.stream, meter, dec, new Writable({ objectMode: true, write: (_p, _e, cb) => cb() }));
    if (o.block !== undefined) store.checkFound();
    await temp.commit(o.force);
    progress.finish();
    if (!o.quiet) {
      const r = dec.stats.records;
      ctx.io.stderr.write(`xbzrle: ${newPath}: applied ${plural(r.XBZRLE + r.PAGE + r.ZERO, 'page')} (XBZRLE ${r.XBZRLE}, PAGE ${r.PAGE}, ZERO ${r.ZERO}) from a plain RAM record stream (no checksums)\n`);
    }
  } catch (err) {
    progress.finish();
    await file.close();
    await temp.abort();
    throw inputError(input.name, err, meter);
  }
}
