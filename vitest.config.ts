import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'simd', include: ['test/**/*.test.ts'] },
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
