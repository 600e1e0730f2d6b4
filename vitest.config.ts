import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Test files run by `npm run test:slow` instead of `npm test`: minutes-long end-to-end runs,
 * and the ones that install the packed tarball or run the README's shell walkthrough (child
 * processes and compilers, 10-20 s each on 2 cores).
 */
const SLOW = ['test/load.test.ts', 'test/examples.test.ts', 'test/consumer-types.test.ts', 'test/readme-walkthrough.test.ts'];

/**
 * Files that hold a worker longest (child processes, `npm pack` + `tsc`, whole captures, a
 * browser), longest first; in every project. They start first so that short files fill the end
 * of the run. Without timings from an earlier run (a clean clone), vitest starts larger files
 * first, and short files with long runs (readme-walkthrough, ~40 lines, 10-20 s) started last and
 * set the end of `npm test`. Only the order depends on this list.
 */
const LONG_FIRST = [
  'test/cli.test.ts',
  'test/readme-snippets.test.ts',
  'test/package.test.ts',
  'test/streams.test.ts',
  'test/hardening.test.ts',
  'test/qemu-versions.test.ts',
  'test/report-browser.test.ts',
  'test/fuzz.test.ts',
];

class LongFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification): number => {
      const i = LONG_FIRST.indexOf(relative(spec.project.config.root, spec.moduleId).replace(/\\/g, '/'));
      return i < 0 ? LONG_FIRST.length : i;
    };
    return sorted
      .map((spec, index) => ({ spec, index, rank: rank(spec) }))
      .sort((a, b) => a.rank - b.rank || a.index - b.index)
      .map(({ spec }) => spec);
  }
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // A folder where the gzip-compressed fixtures are decompressed once per run (test/helpers/fixtures.ts).
    globalSetup: ['test/helpers/fixtures-setup.ts'],
    sequence: { sequencer: LongFirstSequencer },
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
