import { availableParallelism } from 'node:os';
import process from 'node:process';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * glibc's allocator in the test processes (the forks inherit this environment; it is read when a
 * process starts, so it is set here, before vitest starts them): blocks up to 32 MiB come from
 * its heap instead of a fresh mapping each, and freed memory is kept for the next allocation.
 * The suite allocates and drops many large buffers, and on the 2-core VM a first touch of fresh
 * memory costs ~11 µs per 4 KiB page: 33 of the 180 s of CPU of the suite went to page faults.
 * With this the vitest lane took 90-93 s instead of 104-109 s (interleaved runs). A value the
 * caller set is kept; other C libraries ignore it.
 */
process.env['GLIBC_TUNABLES'] ??= 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824';

/**
 * Test files run by `npm run test:slow` instead of `npm test`: minutes-long end-to-end runs,
 * the ones that install the packed tarball (the package's contents, the README's snippets and
 * TypeScript consumers compiled against its published types; `npm pack`, `npm install` and
 * compilers: 6-20 s of CPU each on 2 cores) or run the README's shell walkthrough, and the
 * soaks: the time-budgeted fuzz (~7 s of one worker, ~11 s of CPU) and `patch` killed at
 * random moments (12 child processes). `npm test` builds dist/ without the declarations (the
 * bundling of the `.d.ts` files is ~10 s of CPU); `test:slow` builds all of it.
 */
const SLOW = [
  'test/load.test.ts',
  'test/examples.test.ts',
  'test/consumer-types.test.ts',
  'test/package.test.ts',
  'test/readme-snippets.test.ts',
  'test/readme-walkthrough.test.ts',
  'test/fuzz.test.ts',
  'test/patch-killed.test.ts',
];

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
];

/**
 * Files that run one after another in a shared worker process (`isolate: false`) instead of a
 * fresh process each: starting a process and importing the library took ~1 s of CPU per file
 * on the 2-core VM (measured on 26 of these files: 68 s of CPU isolated, 40 s shared). Only
 * files that leave no process-wide state behind: no worker threads or kernel pool, no
 * frame-worker factory, no spies, no process-wide memory accounting, no browser, no node child
 * processes (the CLI runs in-process, `runMain`). They pass in one worker in any order
 * (checked with --sequence.shuffle.files). A file that starts using any of those moves back
 * to its isolated project. `npm test` runs simd, simd-shared, ts and ts-shared.
 */
const SHARED = [
  'test/bench-equivalence.test.ts',
  'test/cli-decode-holes.test.ts',
  'test/cli-delta.test.ts',
  'test/cli-encode-reread.test.ts',
  'test/cli-encode-stdin-rounds.test.ts',
  'test/cli-encode-stdout.test.ts',
  'test/cli-main.test.ts',
  'test/codec.test.ts',
  'test/copy-into.test.ts',
  'test/decode-borrowed-stopped-early.test.ts',
  'test/decode-borrowed-trailing-data.test.ts',
  'test/decode-stream-checks.test.ts',
  'test/delta-base.test.ts',
  'test/delta-chain.test.ts',
  'test/delta-corruption.test.ts',
  'test/delta-dedup.test.ts',
  'test/delta-header.test.ts',
  'test/delta-qemu.test.ts',
  'test/delta-roundtrip.test.ts',
  'test/delta-sparse.test.ts',
  'test/delta-stream.test.ts',
  'test/encode-constructor-error-frees-slabs.test.ts',
  'test/encode-output-refused-frees-round-check.test.ts',
  'test/encoder-runs-resize-mid-record.test.ts',
  'test/encoder-runs-several-blocks.test.ts',
  'test/file-page-store-borrowed.test.ts',
  'test/file-page-store-model.test.ts',
  'test/hardening.test.ts',
  'test/iterators.test.ts',
  'test/kernel-step-run.test.ts',
  'test/layering.test.ts',
  'test/migration-file-reused-chunks.test.ts',
  'test/migration-file-reused-headers.test.ts',
  'test/page-cache.test.ts',
  'test/path-tuner.test.ts',
  'test/qemu-cli.test.ts',
  'test/qemu-fixtures.test.ts',
  'test/qemu-mapped-ram.test.ts',
  'test/qemu-multifd.test.ts',
  'test/qemu-reader.test.ts',
  'test/qemu-target-file.test.ts',
  'test/qemu-target.test.ts',
  'test/qemu-versions.test.ts',
  'test/record-format.test.ts',
  'test/record-writer-kernel-slabs.test.ts',
  'test/report.test.ts',
  'test/slab-pool.test.ts',
  'test/stats.test.ts',
  'test/streams.test.ts',
  'test/write-back.test.ts',
  'test/write-queue-order.test.ts',
  'test/write-queue.test.ts',
];

/** The codec and stream suites that run again on the portable TypeScript path. */
const TS = ['test/codec.test.ts', 'test/streams.test.ts', 'test/simd.test.ts', 'test/qemu-fixtures.test.ts', 'test/decode-stream-checks.test.ts'];

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
    // Integer typed arrays compared by their bytes (test/helpers/setup-equality.ts).
    setupFiles: ['test/helpers/setup-equality.ts'],
    sequence: { sequencer: LongFirstSequencer },
    // At least two files at once, even on 2 cores: many tests wait on files, child
    // processes and workers (measured on the 2-core VM: vitest 150 s instead of ~220 s).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    projects: [
      {
        extends: true,
        test: { name: 'simd', include: ['test/**/*.test.ts'], exclude: [...SLOW, ...SHARED] },
      },
      {
        extends: true,
        test: { name: 'simd-shared', include: SHARED, isolate: false },
      },
      {
        // Minutes-long end-to-end runs (load, examples): `npm run test:slow`, which CI runs too.
        extends: true,
        test: { name: 'slow', include: SLOW },
      },
      {
        // The same codec and stream suites on the portable TypeScript path.
        extends: true,
        test: { name: 'ts', include: TS.filter((f) => !SHARED.includes(f)), env: { XBZRLE_WASM: '0' } },
      },
      {
        extends: true,
        test: { name: 'ts-shared', include: TS.filter((f) => SHARED.includes(f)), env: { XBZRLE_WASM: '0' }, isolate: false },
      },
    ],
  },
});
