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
    // The CommonJS build loads its dependencies with require(), as CommonJS code is expected to
    // (a dynamic import() fails under loaders that run it through vm.Script without a callback for
    // it, such as Jest's default): import() of a dependency loaded on first use becomes a require()
    // run at that first use.
    esbuildOptions(options, { format }) {
      if (format === 'cjs') options.supported = { ...options.supported, 'dynamic-import': false };
    },
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
