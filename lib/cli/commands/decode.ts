import { DecoderCore } from '../../core/decoder.js';
import { FilePageStore } from '../../store/file-page-store.js';
import { fileCacheSize, outputOption, type CommonOptions } from '../args.js';
import { SingleBlockStore } from '../block-filter.js';
import { CliError } from '../errors.js';
import { checkOutputPath, InputMeter, inputError, openInput, TempFile } from '../files.js';
import { CliContext } from '../io.js';
import { readImageRuns } from '../image-reader.js';
import { formatBytes, Progress } from '../progress.js';
import { loadTargetFile } from '../target-file.js';

export const DECODE_HELP = `usage: xbzrle decode [IN] -o IMAGE [options]

Rebuild the final image from a RAM record stream (as written by encode).
IN is a file or stdin (omitted or '-'), gzip- or zstd-compressed or not. With several
blocks in the stream, --block picks the one to write; the others are checked
and dropped. A delta made by diff updates a base image: apply it with patch.

options:
  -o, --output IMAGE   the image to write (required; --out is an alias)
      --block NAME     block to write (default: the stream's only block)
      --page-size N    page size (default: 4096)
      --cache-size N   memory for cached pages of the output (default: 64M)
      --threads N      threads to apply records on (default: the cores, at most 8);
                       the output is the same for any N
      --target FILE    refuse what the receiving machine's QEMU would refuse:
                       FILE is a JSON array of {id, length, maxLength?,
                       resizeable?}, or a QEMU migration file (its block list)
  -f, --force          overwrite IMAGE
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

export async function decode(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  if (positionals.length > 1) throw new CliError('decode takes at most one IN', true);
  const target = outputOption(o);
  if (target === undefined || target === '-') throw new CliError('decode needs -o IMAGE (a file)', true);
  const cacheSize = fileCacheSize(o);
  const blocks = o.target === undefined ? undefined : await loadTargetFile(o.target);
  const out = await checkOutputPath(target, o.force, [positionals[0]]);
  const input = await openInput(ctx, positionals[0]);
  const temp = new TempFile(ctx, out.path, target);
  const progress = new Progress('decode', input.size, o.quiet ? false : o.progress, ctx.io);
  const meter = new InputMeter((n) => progress.update(n));
  const file = new FilePageStore({ path: () => temp.path, cacheSize });
  const store = new SingleBlockStore(file, input.name, o.block, o.pageSize, true);
  const core = new DecoderCore({ store, pageSize: o.pageSize, emitPages: false, target: blocks, threads: o.threads });
  try {
    // The decoder core fed directly: a regular file is read into two reused buffers (a
    // read ahead while the other is decoded; fresh memory per chunk costs a page fault
    // per 4 KiB), each used up (records applied, a cut record stashed) before its reuse.
    const plainFile = input.path !== undefined && input.size !== undefined && input.compression === undefined;
    if (plainFile) input.stream.destroy();
    const chunks = plainFile ? readImageRuns(input.path!, 1 << 20, o.pageSize, false) : (input.stream as AsyncIterable<Uint8Array>);
    for await (const chunk of chunks) {
      meter.observe(chunk);
      core.feed(chunk);
      await core.drain();
    }
    core.end();
    await core.drain();
    store.checkFound();
    await temp.commit(o.force);
    progress.finish();
    if (!o.quiet) {
      const r = core.stats.records;
      ctx.io.stderr.write(`xbzrle: ${target}: block ${JSON.stringify(store.chosen)} rebuilt from ${formatBytes(meter.bytes)} (${r.PAGE} PAGE, ${r.ZERO} ZERO, ${r.XBZRLE} XBZRLE, ${r.EOS} EOS)\n`);
    }
  } catch (err) {
    progress.finish();
    input.stream.destroy(); // stdin or a pipe left open must not keep the process alive
    await file.close();
    await temp.abort();
    throw inputError(input.name, err, meter);
  } finally {
    core.dispose(); // the worker pool's staging area, with threads
  }
}
