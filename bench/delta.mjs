// Snapshot deltas against xdelta3 and zstd --patch-from, on deterministic
// memory-like image pairs (bench/delta/gen.mjs). Runs are interleaved and
// the medians printed, with `cat OLD NEW` and `dd conv=fsync` as references.
//
//   npm run bench:delta [-- --size 1G --reps 3 --workloads edits,moved]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptArgs } from './args.mjs';
import { generate, WORKLOADS } from './delta/gen.mjs';

const USAGE = `usage: node bench/delta.mjs [options]

  --size N        image size (default 1G; K, M, G suffixes)
  --reps N        interleaved repetitions, medians reported (default 3)
  --workloads L   comma-separated subset of: ${Object.keys(WORKLOADS).join(', ')}
  --dir PATH      where the images go (default: the system temp folder)
  --peer-reps N   repetitions of xdelta3 and zstd (default: --reps; they take
                  minutes per run at 1 GiB)
  --keep          keep the generated images for the next run
  --before PATH   also time diff and patch of another built copy of the package
                  (its root folder, e.g. a checkout of an older commit with
                  dist/ built), interleaved with this one's, and print both
  --threads N     also time diff and patch with threads: N (this build; the
                  other rows are 1 thread), interleaved, and print the ratio
`;
const { values, fail } = scriptArgs('bench:delta', USAGE, {
  size: { type: 'string', default: '1G' },
  reps: { type: 'string', default: '3' },
  workloads: { type: 'string', default: Object.keys(WORKLOADS).join(',') },
  dir: { type: 'string', default: join(tmpdir(), 'xbzrle-bench-delta') },
  keep: { type: 'boolean', default: false },
  'peer-reps': { type: 'string' },
  before: { type: 'string' },
  threads: { type: 'string' },
});
const m = /^(\d+)([KMG]?)$/i.exec(values.size) ?? fail(`bad --size ${values.size}`);
/** @type {Record<string, number>} */
const UNITS = { '': 1, K: 1024, M: 1 << 20, G: 1 << 30 };
const size = Number(m[1]) * UNITS[m[2].toUpperCase()];
if (size % 4096 !== 0 || size === 0) fail('--size must be a positive multiple of 4096');
const reps = Number(values.reps);
const peerReps = values['peer-reps'] === undefined ? reps : Number(values['peer-reps']);
const workloads = values.workloads.split(',');
const threads = values.threads === undefined ? null : Number(values.threads);
if (threads !== null && !(Number.isInteger(threads) && threads >= 1 && threads <= 256)) fail(`bad --threads ${values.threads}`);
for (const w of workloads) if (!(w in WORKLOADS)) fail(`unknown workload ${w}`);
const here = dirname(fileURLToPath(import.meta.url));
const dir = values.dir;
mkdirSync(dir, { recursive: true });

/** @param {string} cmd */
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const HAVE_XDELTA = have('xdelta3');
const HAVE_ZSTD = have('zstd');
const HAVE_TIME = existsSync('/usr/bin/time');
if (!HAVE_XDELTA) console.log('notice: xdelta3 not on the PATH, skipped (apt-get install xdelta3)');
if (!HAVE_ZSTD) console.log('notice: zstd not on the PATH, skipped (apt-get install zstd)');

/**
 * Runs a shell command under /usr/bin/time: wall ms and peak RSS bytes.
 * @param {string} cmd
 * @returns {{ ms: number, rss: number, stdout: string }}
 */
function timed(cmd) {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'sh', '-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  return { ms, rss: Number(lines[lines.length - 1]) * 1024, stdout: r.stdout };
}

/**
 * One run of bench/delta/one.mjs (`diff OLD NEW DELTA` or `patch OLD DELTA OUT`).
 * @param {string} args
 * @returns {{ ms: number, rss: number, stats: import('xbzrle').DeltaStats }}
 */
function ours(args, root = join(here, '..')) {
  const r = timed(`${process.execPath} ${join(root, 'bench', 'delta', 'one.mjs')} ${args}`);
  const j = JSON.parse(/** @type {string} */ (r.stdout.trim().split('\n').pop()));
  return { ms: r.ms, rss: r.rss, stats: j.stats };
}

/** @param {number[]} xs @returns {number} the median (the lower one for an even count) */
const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
/** @param {string} p */
const fsize = (p) => statSync(p).size;
/** @param {number} n */
const mb = (n) => (n / 1e6).toFixed(2);
/** @param {number} ms */
const sec = (ms) => (ms / 1000).toFixed(2);
/** @param {number} n */
const mib = (n) => (n / 1048576).toFixed(0);

const rows = [];
for (const w of workloads) {
  const oldP = join(dir, `${w}-${values.size}.old`);
  const newP = join(dir, `${w}-${values.size}.new`);
  if (!existsSync(oldP) || !existsSync(newP) || fsize(oldP) !== size) {
    process.stdout.write(`generating ${w} (${values.size})… `);
    const t0 = performance.now();
    await generate(oldP, newP, size, w);
    console.log(`${sec(performance.now() - t0)} s`);
  }
  const d = join(dir, `${w}.xbzd`);
  const out = join(dir, `${w}.patched`);
  const xd = join(dir, `${w}.xd3`);
  const zd = join(dir, `${w}.zst`);
  /** @type {Record<'cat' | 'dd' | 'diff' | 'patch' | 'xdelta' | 'zstd' | 'diffRss' | 'patchRss' | 'xRss' | 'zRss' | 'diff0' | 'patch0' | 'diffN' | 'patchN' | 'diffNRss' | 'patchNRss', number[]>} */
  const t = { cat: [], dd: [], diff: [], patch: [], xdelta: [], zstd: [], diffRss: [], patchRss: [], xRss: [], zRss: [], diff0: [], patch0: [], diffN: [], patchN: [], diffNRss: [], patchNRss: [] };
  /** @type {import('xbzrle').DeltaStats | null} */
  let stats = null;
  timed(`cat ${oldP} ${newP} > /dev/null`); // warm the page cache
  for (let i = 0; i < reps; i++) {
    t.cat.push(timed(`cat ${oldP} ${newP} > /dev/null`).ms);
    const rd = ours(`diff ${oldP} ${newP} ${d}`);
    t.diff.push(rd.ms);
    t.diffRss.push(rd.rss);
    stats = rd.stats;
    rmSync(join(dir, 'dd.out'), { force: true });
    t.dd.push(timed(`dd if=${oldP} of=${join(dir, 'dd.out')} bs=1M conv=fsync status=none`).ms);
    rmSync(join(dir, 'dd.out'), { force: true });
    rmSync(out, { force: true });
    const rp = ours(`patch ${oldP} ${d} ${out}`);
    t.patch.push(rp.ms);
    t.patchRss.push(rp.rss);
    if (i === 0 && spawnSync('cmp', [out, newP]).status !== 0) throw new Error(`${w}: patched image differs from NEW`);
    rmSync(out, { force: true });
    if (threads !== null) {
      const dN = join(dir, `${w}.threads.xbzd`);
      const r1 = ours(`diff ${oldP} ${newP} ${dN} --threads ${threads}`);
      t.diffN.push(r1.ms);
      t.diffNRss.push(r1.rss);
      if (spawnSync('cmp', [dN, d]).status !== 0) throw new Error(`${w}: the delta with ${threads} threads differs from the one with 1`);
      const r2 = ours(`patch ${oldP} ${dN} ${out} --threads ${threads}`);
      t.patchN.push(r2.ms);
      t.patchNRss.push(r2.rss);
      if (i === 0 && spawnSync('cmp', [out, newP]).status !== 0) throw new Error(`${w}: patched image (${threads} threads) differs from NEW`);
      rmSync(out, { force: true });
      rmSync(dN, { force: true });
    }
    if (values.before !== undefined) {
      const d0 = join(dir, `${w}.before.xbzd`);
      t.diff0.push(ours(`diff ${oldP} ${newP} ${d0}`, values.before).ms);
      t.patch0.push(ours(`patch ${oldP} ${d0} ${out}`, values.before).ms);
      rmSync(out, { force: true });
      rmSync(d0, { force: true });
    }
    if (HAVE_XDELTA && i < peerReps) {
      const r = timed(`xdelta3 -e -f -B ${size} -s ${oldP} ${newP} ${xd}`);
      t.xdelta.push(r.ms);
      t.xRss.push(r.rss);
    }
    if (HAVE_ZSTD && i < peerReps) {
      const r = timed(`zstd -q -f -3 --long=31 --patch-from=${oldP} ${newP} -o ${zd}`);
      t.zstd.push(r.ms);
      t.zRss.push(r.rss);
    }
  }
  // Peers skipped (not installed, or --peer-reps 0) have no sizes or times.
  const ranX = HAVE_XDELTA && peerReps > 0;
  const ranZ = HAVE_ZSTD && peerReps > 0;
  const row = {
    w,
    delta: fsize(d),
    xdelta: ranX ? fsize(xd) : null,
    zstd: ranZ ? fsize(zd) : null,
    diff: med(t.diff),
    patch: med(t.patch),
    diffN: t.diffN.length > 0 ? med(t.diffN) : null,
    patchN: t.patchN.length > 0 ? med(t.patchN) : null,
    diffNRss: t.diffNRss.length > 0 ? Math.max(...t.diffNRss) : null,
    patchNRss: t.patchNRss.length > 0 ? Math.max(...t.patchNRss) : null,
    diff0: t.diff0.length > 0 ? med(t.diff0) : null,
    patch0: t.patch0.length > 0 ? med(t.patch0) : null,
    cat: med(t.cat),
    dd: med(t.dd),
    xdeltaMs: ranX ? med(t.xdelta) : null,
    zstdMs: ranZ ? med(t.zstd) : null,
    diffRss: Math.max(...t.diffRss),
    patchRss: Math.max(...t.patchRss),
    xRss: ranX ? Math.max(...t.xRss) : null,
    zRss: ranZ ? Math.max(...t.zRss) : null,
    stats,
  };
  rows.push(row);
  for (const f of [d, xd, zd]) rmSync(f, { force: true });
  if (!values.keep) {
    rmSync(oldP, { force: true });
    rmSync(newP, { force: true });
  }
  const s = stats;
  if (s === null) throw new Error(`${w}: no diff was run (--reps 0)`);
  console.log(
    `${w}: delta ${mb(row.delta)} MB (xdelta3 ${row.xdelta === null ? '-' : mb(row.xdelta)}, zstd ${row.zstd === null ? '-' : mb(row.zstd)}); ` +
      `diff ${sec(row.diff)} s, patch ${sec(row.patch)} s, cat ${sec(row.cat)} s, dd ${sec(row.dd)} s, xdelta3 ${row.xdeltaMs === null ? '-' : sec(row.xdeltaMs)} s, zstd ${row.zstdMs === null ? '-' : sec(row.zstdMs)} s; ` +
      `RSS diff ${mib(row.diffRss)} MiB, patch ${mib(row.patchRss)} MiB; records: XBZRLE ${s.xbzrle}, PAGE ${s.page}, ZERO ${s.zero}, refs ${s.refOld}+${s.refNew}`,
  );
}

console.log(`\n| ${values.size} workload | delta | xdelta3 | zstd | ratio to best peer | diff | peer (faster) | cat | diff/peer | diff/cat | patch | dd | patch/dd | RSS diff/patch | RSS xdelta3/zstd |`);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
let smaller = 0;
let counted = 0;
for (const r of rows) {
  const peers = [r.xdelta, r.zstd].filter((x) => x !== null);
  const best = peers.length > 0 ? Math.min(...peers) : null;
  const peerMs = [r.xdeltaMs, r.zstdMs].filter((x) => x !== null);
  const fast = peerMs.length > 0 ? Math.min(...peerMs) : null;
  if (peers.length > 0) {
    counted++;
    if (peers.every((p) => r.delta < p)) smaller++;
  }
  console.log(
    `| ${r.w} | ${mb(r.delta)} MB | ${r.xdelta === null ? '-' : mb(r.xdelta) + ' MB'} | ${r.zstd === null ? '-' : mb(r.zstd) + ' MB'} | ${best === null ? '-' : (r.delta / best).toFixed(2)} | ${sec(r.diff)} s | ${fast === null ? '-' : sec(fast) + ' s'} | ${sec(r.cat)} s | ${fast === null ? '-' : (r.diff / fast).toFixed(3)} | ${(r.diff / r.cat).toFixed(2)} | ${sec(r.patch)} s | ${sec(r.dd)} s | ${(r.patch / r.dd).toFixed(2)} | ${mib(r.diffRss)}/${mib(r.patchRss)} MiB | ${r.xRss === null ? '-' : mib(r.xRss)}/${r.zRss === null ? '-' : mib(r.zRss)} MiB |`,
  );
}
if (counted > 0) console.log(`\nsmaller than both peers on ${smaller} of ${counted} workloads`);
if (threads !== null) {
  console.log(`\n| ${values.size} workload | diff 1 thread | diff ${threads} threads | ratio | patch 1 thread | patch ${threads} threads | ratio | RSS diff/patch, ${threads} threads |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (r.diffN === null || r.patchN === null) continue;
    console.log(
      `| ${r.w} | ${sec(r.diff)} s | ${sec(r.diffN)} s | ${(r.diffN / r.diff).toFixed(2)} | ${sec(r.patch)} s | ${sec(r.patchN)} s | ${(r.patchN / r.patch).toFixed(2)} | ${mib(r.diffNRss ?? 0)}/${mib(r.patchNRss ?? 0)} MiB |`,
    );
  }
}
if (values.before !== undefined) {
  console.log(`\n| ${values.size} workload | diff before | diff now | cat | diff/cat before → now | patch before | patch now | dd | patch/dd before → now |`);
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (r.diff0 === null || r.patch0 === null) continue;
    console.log(
      `| ${r.w} | ${sec(r.diff0)} s | ${sec(r.diff)} s | ${sec(r.cat)} s | ${(r.diff0 / r.cat).toFixed(2)} → ${(r.diff / r.cat).toFixed(2)} | ${sec(r.patch0)} s | ${sec(r.patch)} s | ${sec(r.dd)} s | ${(r.patch0 / r.dd).toFixed(2)} → ${(r.patch / r.dd).toFixed(2)} |`,
    );
  }
}
