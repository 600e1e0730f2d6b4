// The C baseline (bench/baseline.c): compiling it, one timed run with an
// optional dump of its output, and its --serve mode for the paired samples.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/baseline.c */
export const BASELINE_SOURCE = fileURLToPath(new URL('../baseline.c', import.meta.url));

/** bench/.build: the compiled baseline, its input files, its dump, mismatch reproducers. */
export const BUILD_DIR = fileURLToPath(new URL('../.build/', import.meta.url));

/**
 * The files a run of the baseline reads (`old`, `new`) and writes (`dump`).
 * @typedef {{ old: string, new: string, dump: string }} BaselineFiles
 */

/**
 * @param {string} dir
 * @returns {BaselineFiles}
 */
export const baselineFiles = (dir) => ({ old: join(dir, 'old.bin'), new: join(dir, 'new.bin'), dump: join(dir, 'c-out.bin') });

/**
 * Compiles bench/baseline.c into `dir` (with `cc -O2 -std=c11 -Wall`, or $CC),
 * unless a binary newer than the source is there. Returns the binary, or null
 * with the reason (and the compiler's messages) when no compiler can build
 * it; `warnings` holds what the compiler printed on success.
 * @param {{ dir?: string, cc?: string }} [options]
 * @returns {{ bin: string, warnings: string } | { bin: null, reason: string, detail: string }}
 */
export function buildBaseline({ dir = BUILD_DIR, cc = process.env['CC'] || 'cc' } = {}) {
  const bin = join(dir, process.platform === 'win32' ? 'baseline.exe' : 'baseline');
  mkdirSync(dir, { recursive: true });
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(BASELINE_SOURCE).mtimeMs) return { bin, warnings: '' };
  const probe = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return { bin: null, reason: `no C compiler: \`${cc}\` not runnable; set CC to use another`, detail: '' };
  const r = spawnSync(cc, ['-O2', '-std=c11', '-Wall', '-o', bin, BASELINE_SOURCE], { encoding: 'utf8' });
  // A compiler that cannot build the file is an environment problem, not a codec failure.
  if (r.status !== 0) return { bin: null, reason: `compile failed with \`${cc} -O2\``, detail: r.stderr };
  return { bin, warnings: r.stderr.trim() };
}

/**
 * What one run of the baseline prints (its JSON line), with the counts under
 * the names the JavaScript summaries use.
 * @typedef {object} BaselineResult
 * @property {number} encodeMBps
 * @property {number} decodeMBps
 * @property {string} hash
 * @property {number} encodedBytes
 * @property {number} deltaPages
 * @property {number} unchanged
 * @property {number} overflow
 * @property {number} roundtripErrors
 */

/**
 * One run of the C program on `files.old` / `files.new`: each timed loop runs
 * for `seconds` (0: one pass); with `dump`, the output is written to `files.dump`.
 * @param {string} bin
 * @param {BaselineFiles} files
 * @param {number} seconds
 * @param {boolean} dump
 * @returns {BaselineResult}
 */
export function runBaseline(bin, files, seconds, dump) {
  const argv = [files.old, files.new, String(seconds)];
  if (dump) argv.push(files.dump);
  const r = spawnSync(bin, argv, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0 && r.status !== 1) throw new Error(`C baseline failed (status ${r.status}): ${r.stderr}`);
  const c = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  return { ...c, unchanged: c.unchangedPages, overflow: c.overflowPages };
}

/**
 * The C program in `--serve` mode on `files`: each `sweeps(n)` has it encode
 * every page n times and resolves with the nanoseconds that took. Its buffers
 * stay put between requests, like the JavaScript side's.
 */
export class CServer {
  /** @type {{ resolve: (ns: number) => void, reject: (err: Error) => void }[]} */
  #waiting = [];
  #text = '';
  #child;

  /**
   * @param {string} bin
   * @param {BaselineFiles} files
   */
  constructor(bin, files) {
    this.#child = spawn(bin, ['--serve', files.old, files.new], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.stdout.setEncoding('utf8');
    this.#child.stdout.on('data', (chunk) => {
      this.#text += chunk;
      for (let nl = this.#text.indexOf('\n'); nl >= 0; nl = this.#text.indexOf('\n')) {
        const line = this.#text.slice(0, nl);
        this.#text = this.#text.slice(nl + 1);
        this.#waiting.shift()?.resolve(Number(line));
      }
    });
    /** @param {Error} err */
    const fail = (err) => {
      for (const w of this.#waiting.splice(0)) w.reject(err);
    };
    this.#child.on('error', fail);
    this.#child.on('exit', (code) => fail(new Error(`C baseline --serve exited (status ${code})`)));
  }

  /**
   * @param {number} n
   * @returns {Promise<number>} nanoseconds
   */
  sweeps(n) {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#child.stdin.write(`${n}\n`);
    });
  }

  close() {
    this.#child.stdin.end();
  }
}
