import { buildMigrationReport } from '../../report/build.js';
import { renderReportHtml } from '../../report/html.js';
import { outputOption, type CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { InputMeter, inputError, openInput, openOutput } from '../files.js';
import { CliContext } from '../io.js';
import { formatBytes, Progress } from '../progress.js';

export const REPORT_HELP = `usage: xbzrle report [FILE] -o REPORT.html [options]

Write one self-contained HTML page (no network access, no external files)
showing a QEMU migration file or a RAM record stream (a delta): the summary
stat prints; bytes, pages by kind, encoding rate and cache miss rate per round
(a round ends at each EOS); the XBZRLE delta size histogram; and for every RAM
block a page map per round: which pages went as ZERO, XBZRLE (shaded by delta
size) or PAGE, and which PAGEs were resent (a cache miss, or an overflow when
the delta would not fit in a page). Large blocks are drawn with several pages
per cell, and successive rounds merged when there are many, so the page stays
small (a few MB at most) for any guest size.
FILE may be '-' or omitted (stdin), gzip- or zstd-compressed or not.

options:
  -o, --output FILE    the HTML file to write (default: stdout, refused on a terminal)
      --page-size N    page size of a delta (default: 4096; QEMU files say theirs)
  -f, --force          overwrite FILE
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

export async function report(positionals: string[], o: CommonOptions, ctx: CliContext = new CliContext()): Promise<void> {
  if (positionals.length > 1) throw new CliError('report takes at most one FILE', true);
  const target = outputOption(o);
  const input = await openInput(ctx, positionals[0]);
  const out = await openOutput(ctx, target, o.force, [input.path]);
  const progress = new Progress('report', input.size, o.quiet ? false : o.progress, ctx.io);
  const meter = new InputMeter((n) => progress.update(n));
  let html: string;
  let rounds = 0;
  let blocks = 0;
  try {
    const body = input.stream.pipe(meter);
    input.stream.on('error', (err) => meter.destroy(err));
    const data = await buildMigrationReport(body as AsyncIterable<Uint8Array>, { name: input.name, pageSize: o.pageSize });
    rounds = data.rounds.length;
    blocks = data.blocks.length;
    html = renderReportHtml(data);
    progress.finish();
  } catch (err) {
    progress.finish();
    input.stream.destroy();
    await out.abort();
    throw inputError(input.name, err, meter.isQemuFile ? undefined : meter);
  }
  try {
    await out.write(Buffer.from(html, 'utf8'));
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
  if (!o.quiet && out.name !== 'stdout') {
    ctx.io.stderr.write(`xbzrle: ${out.name}: report of ${input.name} (${rounds} rounds, ${blocks} blocks), ${formatBytes(Buffer.byteLength(html))}\n`);
  }
}
