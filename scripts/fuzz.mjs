#!/usr/bin/env node
// `npm run fuzz [-- --minutes N] [-- --seed S]`: the fuzz suite (test/fuzz.test.ts)
// for longer than in CI, with a random seed unless one is given. The seed is
// printed: rerun with it to reproduce a failure, and keep the input that failed
// in test/fixtures/crashers/.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const minutes = Number(arg('minutes', '2'));
const seed = Number(arg('seed', String(Math.floor(Math.random() * 2 ** 31))));
console.log(`fuzz: ${minutes} min per property group, seed ${seed}`);
const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', 'test/fuzz.test.ts', '--project', 'simd', '--testTimeout', String(minutes * 60_000 * 2 + 60_000)], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_MS: String(minutes * 60_000), FUZZ_SEED: String(seed) },
});
process.exit(r.status ?? 1);
