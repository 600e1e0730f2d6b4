import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/** Test files run by `npm run test:slow` instead of `npm test`. */
const SLOW = ['test/load.test.ts', 'test/examples.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // At least two files at once, even on 2 cores: many tests wait on files, child
    // processes and workers (measured on the 2-core VM: vitest 150 s instead of ~220 s).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    projects: [
      {
        extends: true,
        test: { name: 'simd', include: ['test/**/*.test.ts'], exclude: [...SLOW] },
      },
      {
        // Minutes-long end-to-end runs (load, examples): `npm run test:slow`, which CI runs too.
        extends: true,
        test: { name: 'slow', include: SLOW },
      },
      {
        // The same codec and stream suites on the portable TypeScript path.
        extends: true,
        test: {
          name: 'ts',
          include: ['test/codec.test.ts', 'test/streams.test.ts', 'test/simd.test.ts', 'test/qemu-fixtures.test.ts', 'test/decode-stream-checks.test.ts'],
          env: { XBZRLE_WASM: '0' },
        },
      },
    ],
  },
});
