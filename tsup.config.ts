import { defineConfig, type Options } from 'tsup';

/**
 * CommonJS builds load their dependencies with require(), as CommonJS code is expected to (a
 * dynamic import() fails under loaders that run it through vm.Script without a callback for it,
 * such as Jest's default): import() of a dependency loaded on first use becomes a require() run
 * at that first use.
 */
const requireInCommonJs: NonNullable<Options['esbuildOptions']> = (options, { format }) => {
  if (format === 'cjs') options.supported = { ...options.supported, 'dynamic-import': false };
};

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
    esbuildOptions: requireInCommonJs,
  },
  {
    // The command: one CommonJS file with its shebang (dist/cli.cjs, the bin), not part of the typed
    // API. CommonJS because Node 20's ES module loader costs ~3 ms a module (resolution, translation)
    // where require() of one file does not: every command started ~14 ms sooner than as ES module
    // chunks (a chunk per command, loaded when it ran). Each command's code still runs only when the
    // command does (esbuild's lazy module wrappers), so `decode` loads no stream classes or zstd.
    entry: { cli: 'lib/cli/bin.ts' },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    dts: false,
    sourcemap: true,
    clean: false,
    target: 'node20',
    platform: 'node',
    splitting: false,
    esbuildOptions: requireInCommonJs,
    // dist/cli.js, for `node dist/cli.js …` (the bin as it was named before): loads the bin.
    async onSuccess() {
      const { writeFile, chmod } = await import('node:fs/promises');
      await writeFile('dist/cli.js', "#!/usr/bin/env node\nimport { createRequire } from 'node:module';\n\ncreateRequire(import.meta.url)('./cli.cjs');\n");
      await chmod('dist/cli.js', 0o755);
    },
  },
]);
