import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: { index: 'lib/index.ts', web: 'lib/web/index.ts' },
    format: ['esm', 'cjs'],
    // Members tagged @internal stay out of the published declarations.
    dts: { compilerOptions: { stripInternal: true } },
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    splitting: false,
  },
  {
    // The command: an ESM file with its shebang, not part of the typed API, and a chunk per
    // command (loaded when it runs) beside it.
    entry: { cli: 'lib/cli/bin.ts' },
    format: ['esm'],
    dts: false,
    sourcemap: true,
    clean: false,
    target: 'node20',
    platform: 'node',
    splitting: true,
  },
]);
