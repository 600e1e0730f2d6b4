/**
 * The bin is one CommonJS file, `dist/cli.cjs` (package.json's `bin`), run
 * directly by its shebang; `dist/cli.js`, the bin's earlier name, loads it,
 * so `node dist/cli.js …` keeps working. Both print the package's version
 * (read from package.json beside `dist/`, by `__filename` in CommonJS).
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertBuilt, PACKAGE_JSON, run } from './helpers/cli.js';

const at = (path: string): string => fileURLToPath(new URL(`../${path}`, import.meta.url));

describe('the bin files', () => {
  it('package.json names dist/cli.cjs; it and dist/cli.js run the command', async () => {
    assertBuilt();
    const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string; bin: Record<string, string> };
    expect(pkg.bin).toEqual({ xbzrle: './dist/cli.cjs' });
    const bin = at('dist/cli.cjs');
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    accessSync(bin, constants.X_OK);
    for (const file of [bin, at('dist/cli.js')]) {
      const r = await run(process.execPath, [file, '--version']);
      expect([r.code, r.stdout.toString()], file).toEqual([0, `xbzrle ${pkg.version}\n`]);
    }
    const direct = await run(bin, ['--version']); // by its shebang
    expect([direct.code, direct.stdout.toString()]).toEqual([0, `xbzrle ${pkg.version}\n`]);
  });
});
