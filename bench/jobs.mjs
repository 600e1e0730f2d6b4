// The jobs users run, end to end, against what the machine does without us,
// same run, interleaved (each rep runs every job and its reference), medians (issue 15's and 17's targets):
//
//   encode   xbzrle encode OLD NEW -o /dev/null --cache-size <image>   vs  cat OLD NEW > /dev/null
//   diff     xbzrle diff OLD NEW -o OUT (a delta file)                   vs  the same cat
//   decode   xbzrle decode STREAM -o OUT.img                             vs  dd if=NEW of=X bs=1M conv=fsync
//   extract  xbzrle extract STREAM -o DIR (the same stream, its block to DIR)  vs  the same dd
//
// with `--threads 1,2,…` the encode and decode jobs run once per thread count ('default': no flag, the
// CLI's default, the cores up to 8; the default list).
// Images: memory-like pairs from bench/delta/gen.mjs ('edits'), warm in the page cache (with --fresh
// copied again first: the page cache's state of a file just written; see below).
//
//   npm run build && node bench/jobs.mjs [--size MiB] [--reps N] [--threads default,1,2] [--only encode,diff,decode,extract,touch,start] [--dir /tmp/xbzrle-jobs] [--fresh]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { generate } from './delta/gen.mjs';
import { quantile } from './lib/timing.mjs';

const CLI = fileURLToPath(new URL('../dist/cli.cjs', import.meta.url));
const args = process.argv.slice(2);
let size = 512;
let reps = 3;
let dir = '/tmp/xbzrle-jobs';
let fresh = false;
/** @type {number[]} */
let threads = [0]; // 0: the CLI's default
/** @type {string[]} */
let only = ['encode', 'diff', 'decode', 'extract', 'touch', 'start'];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--size') size = Number(args[++i]);
  else if (a === '--reps') reps = Number(args[++i]);
  else if (a === '--dir') dir = String(args[++i]);
  else if (a === '--fresh') fresh = true;
  else if (a === '--threads') threads = String(args[++i]).split(',').map((t) => (t === 'default' ? 0 : Number(t)));
  else if (a === '--only') only = String(args[++i]).split(',');
  else if (a === '--help' || a === '-h') {
    console.log('usage: node bench/jobs.mjs [--size MiB] [--reps N] [--threads default,1,2] [--only encode,diff,decode,extract,touch,start] [--dir DIR] [--fresh]');
    process.exit(0);
  } else {
    console.error(`jobs.mjs: unknown option ${a} (--help lists them)`);
    process.exit(2);
  }
}
const bytes = size << 20;
mkdirSync(dir, { recursive: true });
const OLD = join(dir, `old-${size}.img`);
const NEW = join(dir, `new-${size}.img`);
const STREAM = join(dir, `stream-${size}.xs`);
const OUT = join(dir, 'out.img');
const OUTDIR = join(dir, 'out.d');
const DDOUT = join(dir, 'dd.img');
if (!existsSync(OLD) || !existsSync(NEW) || statSync(OLD).size !== bytes) await generate(OLD, NEW, bytes, 'edits', 1);
else if (fresh) {
  // Written again: the page cache holds them as a file just written (the state right after
  // generating them). On the bench VM a file's cached pages age within minutes (the cache
  // split into smaller pieces, it seems): `cat` of the 512 MiB pair took 76-84 ms just after
  // a copy, ~105 ms ten minutes later, 180-250 ms for a pair written three hours before, and our jobs take ~130 ms more too.
  for (const path of [OLD, NEW]) {
    copyFileSync(path, `${path}.tmp`);
    renameSync(`${path}.tmp`, path);
  }
}

/**
 * Runs a command; returns its wall time in ms.
 * @param {string} file
 * @param {string[]} argv
 * @param {string} [shell]
 */
function time(file, argv, shell) {
  // Every timed command starts from the same state: outputs removed, nothing left to write back.
  for (const path of [OUT, OUTDIR, DDOUT]) rmSync(path, { recursive: true, force: true });
  spawnSync('sync');
  const t0 = performance.now();
  const r = shell === undefined ? spawnSync(file, argv, { stdio: ['ignore', 'ignore', 'pipe'] }) : spawnSync('sh', ['-c', shell], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${shell ?? [file, ...argv].join(' ')}: exit ${r.status}: ${r.stderr}`);
  return ms;
}

const threadFlag = (/** @type {number} */ n) => (n === 0 ? [] : ['--threads', String(n)]);
const threadName = (/** @type {number} */ n) => (n === 0 ? `(default: ${Math.min(8, availableParallelism())} thr)` : `--threads ${n}`);
const cache = ['--cache-size', `${Math.max(size, 1)}M`];
// The stream decode reads: OLD then NEW as two rounds.
time(process.execPath, [CLI, 'encode', OLD, NEW, '-o', STREAM, '-f', '-q', ...cache]);
const dd = () => time('dd', [`if=${NEW}`, `of=${DDOUT}`, 'bs=1M', 'conv=fsync', 'status=none']);
/** @type {{ name: string, ref: string, run: () => number, base: () => number }[]} */
const jobs = [];
for (const n of threads) {
  jobs.push({ name: `encode ${threadName(n)}`, ref: 'cat OLD NEW', base: () => time('', [], `cat ${OLD} ${NEW} > /dev/null`), run: () => time(process.execPath, [CLI, 'encode', OLD, NEW, '-o', '/dev/null', '-q', ...cache, ...threadFlag(n)]) });
  // Issue 14's `diff` ≤ 2 × cat, without the peers of bench/delta.mjs (minutes a run): the delta to a file.
  jobs.push({ name: `diff ${threadName(n)}`, ref: 'cat OLD NEW', base: () => time('', [], `cat ${OLD} ${NEW} > /dev/null`), run: () => time(process.execPath, [CLI, 'diff', OLD, NEW, '-o', OUT, '-q', ...threadFlag(n)]) });
  jobs.push({
    name: `decode ${threadName(n)}`,
    ref: 'dd conv=fsync',
    base: dd,
    run: () => time(process.execPath, [CLI, 'decode', STREAM, '-o', OUT, '-q', ...threadFlag(n)]),
  });
  jobs.push({
    name: `extract ${threadName(n)}`,
    ref: 'dd conv=fsync',
    base: dd,
    run: () => time(process.execPath, [CLI, 'extract', STREAM, '-o', OUTDIR, '-q', ...threadFlag(n)]),
  });
}
// The floor of a cache as large as the image on this machine: touching that much fresh memory
// (a page fault per 4 KiB on first touch), measured in a process of its own.
jobs.push({
  name: `(touch ${size} MiB fresh)`,
  ref: 'cat OLD NEW',
  base: () => time('', [], `cat ${OLD} ${NEW} > /dev/null`),
  run: () => time(process.execPath, ['-e', `const b = new Uint8Array(${bytes}); for (let i = 0; i < b.length; i += 4096) b[i] = 1;`]),
});
// What every job pays before it reads a byte: Node's own start (`node -e 0`, the environment's
// NODE_OPTIONS and NODE_EXTRA_CA_CERTS included), and the CLI's (`xbzrle --version`: the package loaded).
jobs.push({
  name: '(start: node -e 0)',
  ref: 'cat OLD NEW',
  base: () => time('', [], `cat ${OLD} ${NEW} > /dev/null`),
  run: () => time(process.execPath, ['-e', '0']),
});
jobs.push({
  name: '(start: xbzrle --version)',
  ref: 'cat OLD NEW',
  base: () => time('', [], `cat ${OLD} ${NEW} > /dev/null`),
  run: () => time(process.execPath, [CLI, '--version']),
});
const chosen = jobs.filter((j) => only.some((o) => j.name.startsWith(o) || j.name.startsWith(`(${o}`)));
console.log(`jobs end to end: ${size} MiB memory-like images ('edits'), ${reps} reps, every job and its reference interleaved in each rep, medians`);
console.log('job                          time ms   reference          ref ms   ratio');
/** @type {{ t: number[], b: number[], ratio: number[] }[]} */
const times = chosen.map(() => ({ t: [], b: [], ratio: [] }));
// Rep by rep, every job once (with its reference right after it), the order reversed every other
// rep: a busy minute on this shared machine falls on every job alike, not on one job's reps.
for (let r = 0; r < reps; r++) {
  const order = chosen.map((_, i) => i);
  if (r % 2 === 1) order.reverse();
  for (const i of order) {
    const job = /** @type {(typeof chosen)[number]} */ (chosen[i]);
    const x = job.run();
    const y = job.base();
    const m = /** @type {(typeof times)[number]} */ (times[i]);
    m.t.push(x);
    m.b.push(y);
    m.ratio.push(x / y);
  }
}
chosen.forEach((job, i) => {
  const { t, b, ratio } = /** @type {(typeof times)[number]} */ (times[i]);
  console.log(`${job.name.padEnd(27)} ${quantile(t, 0.5).toFixed(0).padStart(8)}   ${job.ref.padEnd(15)} ${quantile(b, 0.5).toFixed(0).padStart(8)}   ${quantile(ratio, 0.5).toFixed(2).padStart(5)}×`);
});
for (const path of [OUT, OUTDIR, DDOUT]) rmSync(path, { recursive: true, force: true });
