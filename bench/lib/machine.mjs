// The machine the bench runs on, and --cpu pinning.
import { spawnSync } from 'node:child_process';
import os from 'node:os';

/** @typedef {{ cpu: string, cpus: number, node: string, v8: string, platform: string }} Machine */

/** @returns {Machine} */
export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
  };
}

/**
 * --cpu: moves every thread of this process to CPU `n` with taskset; children
 * started later inherit it. Throws an Error with the reason when it cannot.
 * @param {number} n
 */
export function pinToCpu(n) {
  if (process.platform !== 'linux') throw new Error('--cpu needs Linux (taskset)');
  const r = spawnSync('taskset', ['--all-tasks', '--pid', '--cpu-list', String(n), String(process.pid)], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`--cpu: taskset failed: ${r.error?.message ?? r.stderr.trim()}`);
}
