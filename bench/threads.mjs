// Scaling of the encoder and decoder with `threads` (issue 17): pages in
// allocPages memory, SIZE MiB per scenario, the cache as large as the image.
//
//   encode   round 2 of encodeRounds (round 1 untimed fills the cache), threads N
//   decode   XbzrleDecodeStream (emitPages: false, MemoryPageStore holding round 1)
//            applying round 2's stream, threads N
//
// Thread counts interleaved within each repetition; medians; ratios to 1 thread.
// `cores` is the CPU the process got over the job's whole loop, untimed first rounds
// included (a ratio above it is not possible). Then, when a C compiler works, the
// machine's ceilings in the same run (bench/threads-limits.c): the memory traffic of
// an encoder's round in C on the same thread counts, in two shapes: each page compared
// with its cached copy and copied over it (DENSE's), and each page compared with an
// equal copy, nothing written (UNCHANGED's, and most of SPARSE's).
//
//   npm run build && node bench/threads.mjs [--size MiB] [--reps N] [--threads 1,2,4,8] [SCENARIO...]
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { generate, selectScenarios } from './scenarios.mjs';
import { loadPackage } from './lib/package.mjs';
import { MiB } from './lib/options.mjs';
import { quantile } from './lib/timing.mjs';
import { BUILD_DIR } from './lib/c-baseline.mjs';

const args = process.argv.slice(2);
let size = 256 * MiB;
let reps = 3;
let counts = [1, 2, 4, 8];
/** @type {string[]} */
const names = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--size') size = Number(args[++i]) * MiB;
  else if (a === '--reps') reps = Number(args[++i]);
  else if (a === '--threads') counts = String(args[++i]).split(',').map(Number);
  else if (a !== undefined) names.push(a);
}
const lib = await loadPackage();
const PS = 4096;
const RUN = 4 * MiB;

/** @param {Uint8Array} buf */
function inKernel(buf) {
  const pages = lib.allocPages(buf.length / PS);
  pages.set(buf);
  return pages;
}

/** @param {Uint8Array} buf */
const records = (buf) => {
  /** @type {{ block: string, offset: number, data: Uint8Array }[]} */
  const out = [];
  for (let off = 0; off < buf.length; off += RUN) out.push({ block: 'ram', offset: off, data: buf.subarray(off, off + RUN) });
  return out;
};

/**
 * Encodes round 1 (untimed) then round 2 (timed); returns ms and the round-2
 * stream's length. The chunks are dropped as they come, as a consumer that
 * sends them on does (kept, a DENSE round's 56 MB of fresh chunks cost more in
 * page faults than encoding them; the same bytes for any thread count are
 * proven by test/threads-encoder.test.ts).
 * @param {Uint8Array} a @param {Uint8Array} b @param {number} threads
 */
async function encodeOnce(a, b, threads) {
  let t0 = 0;
  const gen = lib.encodeRounds(
    (async function* () {
      yield records(a);
      t0 = performance.now();
      yield records(b);
    })(),
    { cacheSize: size, threads, chunkSize: 1 << 20 },
  );
  let bytes = 0;
  for await (const c of gen) if (t0 > 0) bytes += c.length;
  return { ms: performance.now() - t0, bytes };
}

/**
 * Applies `round1` (untimed) then `round2` (timed) to a fresh store.
 * @param {Uint8Array} round1 @param {Uint8Array} round2 @param {number} threads
 */
async function decodeOnce(round1, round2, threads) {
  const store = new lib.MemoryPageStore({ maxMemory: 4 * size });
  const dec = new lib.XbzrleDecodeStream({ store, emitPages: false, threads });
  const write = (/** @type {Uint8Array} */ buf) => new Promise((resolve, reject) => dec.write(buf, (err) => (err ? reject(err) : resolve(undefined))));
  for (let off = 0; off < round1.length; off += RUN) await write(round1.subarray(off, off + RUN));
  const t0 = performance.now();
  for (let off = 0; off < round2.length; off += RUN) await write(round2.subarray(off, off + RUN));
  await new Promise((resolve, reject) => {
    dec.on('finish', resolve);
    dec.on('error', reject);
    dec.end();
  });
  const ms = performance.now() - t0;
  // Its readable side is never read, so it is not destroyed on its own: destroyed here, it
  // gives its staging memory back for the next run (else each run's first touches of fresh
  // kernel memory, ~20 µs a page on this VM, land in the timed round).
  dec.destroy();
  store.dispose();
  return ms;
}

const scenarios = selectScenarios(names.length > 0 ? names : ['SPARSE', 'DENSE', 'UNCHANGED']);
console.log(`threads: ${size / MiB} MiB per scenario in allocPages memory, cache = image, ${reps} interleaved reps, medians; ratio = 1 thread's time / N threads' time`);
console.log(`scenario     job     ${counts.map((n) => `${n} thr ms`.padStart(10)).join(' ')}  ${counts.map((n) => `×${n}`.padStart(6)).join(' ')}   cores`);
for (const scenario of scenarios) {
  const g = generate(scenario, size);
  const a = inKernel(g.old);
  const b = inKernel(g.new);
  // Round 1 and round 2 as one stream for the decoder (round 1 ends with its EOS).
  const full = [];
  for await (const c of lib.encodeRounds([records(a), records(b)], { cacheSize: size, chunkSize: 1 << 20 })) full.push(c);
  const whole = Buffer.concat(full);
  const first = [];
  for await (const c of lib.encodeRounds([records(a), 'final'], { cacheSize: size, chunkSize: 1 << 20 })) first.push(c);
  // Round 1's bytes are the prefix up to its EOS: the stream of [round1] less its closing EOS records.
  const cut = Buffer.concat(first).length - 8 * 2;
  const r1 = whole.subarray(0, cut);
  const r2 = whole.subarray(cut);
  for (const job of ['encode', 'decode']) {
    /** @type {Map<number, number[]>} */
    const times = new Map(counts.map((n) => [n, []]));
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    for (let r = 0; r < reps; r++) {
      for (const n of counts) {
        let t;
        if (job === 'encode') {
          const e = await encodeOnce(a, b, n);
          if (e.bytes !== r2.length) throw new Error(`threads ${n}: round 2 is ${e.bytes} bytes, not ${r2.length}`);
          t = e.ms;
        } else t = await decodeOnce(r1, r2, n);
        times.get(n)?.push(t);
      }
    }
    const cpu = process.cpuUsage(cpu0); // the whole loop's (untimed rounds included)
    const wall = performance.now() - start;
    const med = counts.map((n) => quantile(times.get(n) ?? [], 0.5));
    const base = med[0] ?? 1;
    // A round 2 with nothing to apply (UNCHANGED sends no page: two EOS records) takes well
    // under a millisecond whatever the threads: its ratios would be noise.
    const ratio = (/** @type {number} */ m) => (job === 'decode' && base < 1 ? '-' : (base / m).toFixed(2)).padStart(6);
    console.log(
      `${scenario.name.padEnd(12)} ${job.padEnd(7)} ${med.map((m) => m.toFixed(m < 10 ? 1 : 0).padStart(10)).join(' ')}  ${med.map(ratio).join(' ')}   ${((cpu.user + cpu.system) / 1000 / wall).toFixed(2)}`,
    );
  }
  lib.freePages(a);
  lib.freePages(b);
}

// The ceilings: bench/threads-limits.c on the same thread counts (skipped without a C compiler).
const cc = process.env['CC'] || 'cc';
mkdirSync(BUILD_DIR, { recursive: true });
const limitsBin = join(BUILD_DIR, 'threads-limits');
const built = spawnSync(cc, ['-O2', '-std=c11', '-Wall', '-pthread', '-o', limitsBin, fileURLToPath(new URL('./threads-limits.c', import.meta.url))], { encoding: 'utf8' });
if (built.error || built.status !== 0) {
  console.log(`C ceiling: skipped (no working C compiler: \`${cc}\`)`);
} else {
  const r = spawnSync(limitsBin, [String(size / MiB), String(Math.max(5, reps)), ...counts.map(String)], { encoding: 'utf8' });
  /** @param {string} shape @param {string} label @param {string} what */
  const row = (shape, label, what) => {
    const ms = new Map([...String(r.stdout).matchAll(new RegExp(`^${shape} (\\d+) ([\\d.]+)$`, 'gm'))].map((m) => [Number(m[1]), Number(m[2])]));
    const one = ms.get(counts[0] ?? 1) ?? NaN;
    console.log(
      `${'C ceiling'.padEnd(12)} ${label.padEnd(7)} ${counts.map((n) => (ms.get(n) ?? NaN).toFixed(1).padStart(10)).join(' ')}  ${counts.map((n) => (one / (ms.get(n) ?? NaN)).toFixed(2).padStart(6)).join(' ')}   (${what}, in C)`,
    );
  };
  row('threads', 'copy', 'each page compared with its cached copy and copied over it: DENSE');
  row('compare', 'compare', 'each page compared with an equal cached copy, nothing written: UNCHANGED, most of SPARSE');
}
