import { Buffer } from 'node:buffer';
import { open } from 'node:fs/promises';
import { equalRange } from '../../codec/equal.js';
import { PageKernel } from '../../codec/kernel.js';
import { isZeroRange } from '../../codec/zero.js';
import { RecordWriter } from '../../format/record-writer.js';
import { XbzrleStats } from '../../stats.js';
import { plural, type CommonOptions } from '../args.js';
import { CliError } from '../errors.js';
import { openInput, openOutput } from '../files.js';
import { formatBytes, Progress } from '../progress.js';

export const DIFF_HELP = `usage: xbzrle diff OLD NEW [-o DELTA] [options]

Write a delta (a RAM record stream) that turns OLD into NEW. Pages are
compared one by one: unchanged pages are skipped, pages that became all zero
go as ZERO, others as XBZRLE, or PAGE when the delta would not fit in a page.
NEW's size (a multiple of the page size) goes first, in a MEM_SIZE record;
pages past OLD's end are compared with zeros. OLD may be '-' (stdin).

options:
  -o, --output DELTA   write here (default: stdout, refused on a terminal)
      --block NAME     block name in the delta (default: ram)
      --page-size N    page size (default: 4096)
  -f, --force          overwrite DELTA; write binary to a terminal
  -q, --quiet          no summary line
      --[no-]progress  progress bar on stderr (default: when it is a terminal)
`;

const STEP = 1 << 20;

export async function diff(positionals: string[], o: CommonOptions): Promise<void> {
  if (positionals.length !== 2) throw new CliError('diff needs OLD and NEW', true);
  const [oldPath, newPath] = positionals as [string, string];
  if (newPath === '-') throw new CliError('diff needs NEW as a file: its size is written first');
  const ps = o.pageSize;
  const block = o.block ?? 'ram';
  const newFile = await open(newPath, 'r').catch((err: Error) => {
    throw new CliError(`${newPath}: ${err.message}`);
  });
  try {
    const newSize = (await newFile.stat()).size;
    if (newSize === 0) throw new CliError(`${newPath}: is empty (a delta describes at least one page)`);
    if (newSize % ps !== 0) throw new CliError(`${newPath}: size ${newSize} is not a multiple of the page size ${ps}`);
    const oldInput = await openInput(oldPath, STEP);
    const out = await openOutput(o.output, o.force, [oldPath, newPath]);
    const progress = new Progress('diff', newSize, o.quiet ? false : o.progress);
    const stats = new XbzrleStats(ps);
    try {
      const chunks: Uint8Array[] = [];
      const writer = new RecordWriter({ pageSize: ps, alloc: (n) => Buffer.allocUnsafe(n) }, (c) => chunks.push(c));
      const flush = async (): Promise<void> => {
        for (const c of chunks.splice(0)) {
          stats.transferred += c.length;
          await out.write(c);
        }
      };
      writer.memSize([{ id: block, length: newSize }]);
      const kernel = new PageKernel(ps);
      stats.records.MEM_SIZE++;

      // OLD is read sequentially (it may be a pipe); NEW in the same steps.
      const oldIter = oldInput.stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
      let oldBuf: Uint8Array = new Uint8Array(0);
      let oldEnded = false;
      const oldStep = new Uint8Array(STEP);
      const newStep = new Uint8Array(STEP);
      for (let pos = 0; pos < newSize; pos += STEP) {
        const n = Math.min(STEP, newSize - pos);
        // Fill oldStep[0..n) from OLD, zeros past its end.
        let have = 0;
        while (have < n) {
          if (oldBuf.length === 0) {
            if (oldEnded) break;
            const r = await oldIter.next();
            if (r.done === true) {
              oldEnded = true;
              break;
            }
            oldBuf = r.value;
          }
          const take = Math.min(n - have, oldBuf.length);
          oldStep.set(oldBuf.subarray(0, take), have);
          oldBuf = oldBuf.subarray(take);
          have += take;
        }
        oldStep.fill(0, have, n);
        await readFully(newFile, newStep, n, pos, newPath);
        for (let p = 0; p < n; p += ps) {
          diffPage(kernel, writer, stats, block, pos + p, oldStep, newStep, p, ps);
        }
        await flush();
        progress.update(pos + n);
      }
      writer.eos();
      stats.records.EOS++;
      writer.flush();
      await flush();
      await oldIter.return?.();
      await out.commit();
      progress.finish();
      if (!o.quiet && out.name !== 'stdout') {
        const r = stats.records;
        process.stderr.write(
          `xbzrle: ${out.name}: ${r.XBZRLE + r.PAGE + r.ZERO} of ${plural(newSize / ps, 'page')} changed ` +
            `(XBZRLE ${r.XBZRLE}, PAGE ${r.PAGE}, ZERO ${r.ZERO}), ${formatBytes(stats.transferred)}\n`,
        );
      }
    } catch (err) {
      progress.finish();
      await out.abort();
      oldInput.stream.destroy();
      throw err;
    }
  } finally {
    await newFile.close();
  }
}

/** The record for one page of NEW against the same page of OLD (no cache: OLD itself is the reference). */
function diffPage(kernel: PageKernel, writer: RecordWriter, stats: XbzrleStats, block: string, offset: number, oldStep: Uint8Array, newStep: Uint8Array, at: number, ps: number): void {
  if (equalRange(oldStep, at, newStep, at, ps)) return; // unchanged (zero or not)
  if (isZeroRange(newStep, at, ps)) {
    writer.zero(block, offset, 0);
    stats.duplicate++;
    stats.records.ZERO++;
    return;
  }
  const len = kernel.encode(oldStep, at, newStep, at);
  if (len > 0) {
    stats.records.XBZRLE++;
    stats.xbzrlePages++;
    stats.xbzrleBytes += writer.xbzrle(block, offset, kernel.delta, kernel.deltaOff, len) - 8;
  } else {
    writer.page(block, offset, newStep, at);
    stats.normal++;
    stats.records.PAGE++;
    stats.overflow++;
  }
}

async function readFully(file: import('node:fs/promises').FileHandle, buf: Uint8Array, n: number, position: number, name: string): Promise<void> {
  let done = 0;
  while (done < n) {
    const { bytesRead } = await file.read(buf, done, n - done, position + done);
    if (bytesRead === 0) throw new CliError(`${name}: file shrank while being read`);
    done += bytesRead;
  }
}
