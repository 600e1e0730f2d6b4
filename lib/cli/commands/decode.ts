import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FilePageStore } from '../../store/file-page-store.js';
import { XbzrleDecodeStream } from '../../stream/decode-stream.js';
import type { CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { checkOutputPath, InputMeter, inputError, openInput, TempFile } from '../files.js';
import { formatBytes, Progress } from '../progress.js';

export const DECODE_HELP = `usage: xbzrle decode [IN] --out IMAGE [options]

Rebuild the final image from a delta stream (as written by encode or diff).
IN is a file or stdin (omitted or '-'). With several blocks in the stream,
--block picks the one to write; the others are checked and dropped.

options:
      --out IMAGE      the image to write (required; -o works too)
      --block NAME     block to write (default: the stream's only block)
      --page-size N    page size (default: 4096)
  -f, --force          overwrite IMAGE
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

export async function decode(positionals: string[], o: CommonOptions): Promise<void> {
  if (positionals.length > 1) throw new CliError('decode takes at most one IN', true);
  const target = o.out ?? o.output;
  if (target === undefined || target === '-') throw new CliError('decode needs --out IMAGE (a file)', true);
  await checkOutputPath(target, o.force, [positionals[0]]);
  const input = await openInput(positionals[0]);
  const temp = new TempFile(target);
  const progress = new Progress('decode', input.size, o.quiet ? false : o.progress);
  const meter = new InputMeter((n) => progress.update(n));
  let chosen = o.block;
  const file = new FilePageStore({ path: () => temp.path });
  // Pages of the chosen block go to the file; other blocks are parsed and dropped.
  const store = {
    get: (block: string, offset: number, into: Uint8Array) => (pick(block) ? file.get(block, offset, into) : void into.fill(0)),
    put: (block: string, offset: number, data: Uint8Array) => (pick(block) ? file.put(block, offset, data) : undefined),
    declare: (blocks: readonly { id: string; length: number }[]) => {
      if (chosen === undefined && blocks.length > 1) {
        throw new CliError(`${input.name}: the stream holds ${blocks.length} blocks (${blocks.map((b) => b.id).join(', ')}); choose one with --block`);
      }
      return file.declare(blocks.filter((b) => pick(b.id)));
    },
    finish: () => file.finish(),
  };
  let found = false;
  function pick(block: string): boolean {
    chosen ??= block;
    if (block !== chosen) return false;
    found = true;
    return true;
  }
  try {
    const dec = new XbzrleDecodeStream({ store, pageSize: o.pageSize, emitPages: false });
    await pipeline(input.stream, meter, dec, new Writable({ objectMode: true, write: (_p, _e, cb) => cb() }));
    if (!found) {
      throw new CliError(chosen === undefined ? `${input.name}: the stream holds no pages and no block list` : `${input.name}: the stream has no block ${JSON.stringify(chosen)}`);
    }
    await temp.commit(o.force);
    progress.finish();
    if (!o.quiet) {
      const r = dec.stats.records;
      process.stderr.write(`xbzrle: ${target}: block ${JSON.stringify(chosen)} rebuilt from ${formatBytes(meter.bytes)} (${r.PAGE} PAGE, ${r.ZERO} ZERO, ${r.XBZRLE} XBZRLE, ${r.EOS} EOS)\n`);
    }
  } catch (err) {
    progress.finish();
    await file.close();
    await temp.abort();
    throw inputError(input.name, err, meter);
  }
}
