import { verifyDelta, type DeltaStats } from '../../delta/index.js';
import type { CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { openInput } from '../files.js';
import { CliContext } from '../io.js';
import { deltaError, describeDelta } from './diff.js';

export const VERIFY_HELP = `usage: xbzrle verify DELTA [OLD] [options]

Check DELTA ('-' for stdin) without applying it: its header, every frame's
checksum, every record and its trailer. With OLD, also that OLD is the base
the delta was made from and that applying it gives NEW's checksum (the result
is built in a temporary file and removed). Plain RAM record streams (deltas
made with --format qemu) carry no checksum: only their records are checked.
Prints which format DELTA is in and what it holds; exit status 1 when any
check fails.

options:
      --page-size N    refuse a delta of another page size (plain streams are
                       read with it; default: 4096)
      --json           the statistics as JSON
  -q, --quiet          no output, only the exit status
`;

export async function verify(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  if (positionals.length < 1 || positionals.length > 2) throw new CliError('verify needs DELTA and, optionally, OLD', true);
  const [deltaPath, oldPath] = positionals as [string, string | undefined];
  if (oldPath === '-') throw new CliError('verify needs OLD as a file');
  const input = await openInput(ctx, deltaPath);
  let stats: DeltaStats;
  try {
    stats = await verifyDelta(input.stream, oldPath, { pageSize: o.pageSizeSet ? o.pageSize : undefined });
  } catch (err) {
    input.stream.destroy();
    throw deltaError(input.name, err);
  }
  if (o.json) {
    ctx.io.stdout.write(JSON.stringify({ delta: input.name, ok: true, base: oldPath ?? null, ...stats }, null, 2) + '\n');
    return;
  }
  if (o.quiet) return;
  ctx.io.stdout.write(`${input.name}: ok: ${describeDelta(stats)}${oldPath === undefined ? '' : `; ${oldPath} is its base`}\n`);
}
