// bench/memory.mjs (the 1 GiB peak-memory run) in its own process, with --expose-gc.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MEMORY_SCRIPT = fileURLToPath(new URL('../memory.mjs', import.meta.url));

/**
 * Runs bench/memory.mjs --json. Its progress lines go to `log`; returns its
 * JSON result, or null with `failure` set when it exited with an error.
 * @param {(line: string) => void} log
 * @returns {{ result: import('./report.mjs').MemoryResult | null, failure: string | null }}
 */
export function runMemoryBench(log) {
  const r = spawnSync(process.execPath, ['--expose-gc', MEMORY_SCRIPT, '--json'], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.error) throw r.error;
  const lines = r.stdout.trim().split('\n');
  for (const line of lines.slice(0, -1)) log(line);
  if (r.status !== 0) return { result: null, failure: `MEMORY BENCH FAILURE: bench/memory.mjs exited with status ${r.status}` };
  return { result: JSON.parse(/** @type {string} */ (lines[lines.length - 1])), failure: null };
}
