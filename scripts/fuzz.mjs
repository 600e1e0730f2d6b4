#!/usr/bin/env node
// `npm run fuzz [-- --minutes N] [-- --seed S]`: the fuzz suite (test/fuzz.test.ts)
// for longer than in CI, with a random seed unless one is given. The seed is
// printed: rerun with it to reproduce a failure, and keep the input that failed
// in test/fixtures/crashers/.
import { spawnSync } from 'node:child_process';
import { scriptArgs } from '../bench/args.mjs';

const { values, fail } = scriptArgs('fuzz', 'usage: npm run fuzz [-- --minutes N] [-- --seed S]   (N minutes per property group, default 2)\n', {
  minutes: { type: 'string', default: '2' },
  seed: { type: 'string' },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) fail('--minutes must be a positive number');
if (values.seed !== undefined && !/^\d+$/.test(values.seed)) fail('--seed must be a non-negative integer');
const seed = Number(values.seed ?? Math.floor(Math.random() * 2 ** 31));
console.log(`fuzz: ${minutes} min per property group, seed ${seed}`);
const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', 'test/fuzz.test.ts', '--project', 'slow', '--testTimeout', String(minutes * 60_000 * 2 + 60_000)], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_MS: String(minutes * 60_000), FUZZ_SEED: String(seed) },
});
process.exit(r.status ?? 1);
