/**
 * The CommonJS bundle loads its dependencies with require(), also those it
 * loads on first use (xxhash-wasm, zstd-wasm): a loader that runs CommonJS
 * code through `vm.Script` without a dynamic-import callback (Jest's default)
 * has no `import()`, which failed with ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING.
 * Runs on the built bundle (`npm test` builds first).
 */
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';

type Bundle = typeof import('../lib/index.js');

/** dist/index.cjs evaluated as Jest does: wrapped, run in a vm.Script with no importModuleDynamically. */
function loadLikeJest(): Bundle {
  const file = fileURLToPath(new URL('../dist/index.cjs', import.meta.url));
  const wrap = (Module as unknown as { wrap(code: string): string }).wrap;
  const fn = new Script(wrap(readFileSync(file, 'utf8')), { filename: file }).runInThisContext() as (...args: unknown[]) => void;
  const m = { exports: {} as Bundle };
  fn(m.exports, createRequire(file), m, file, dirname(file));
  return m.exports;
}

describe('the CommonJS bundle under vm.Script', () => {
  it('loads the hasher and zstd, and they work', async () => {
    const x = loadLikeJest();
    const raw = new Uint8Array(10000).fill(7);
    const [hasher, zstd] = await Promise.all([x.loadHasher(), x.loadZstd()]);
    expect(hasher.h64(raw)).toBe(7685333414733992357n);
    const packed = zstd.compress(raw, 3);
    expect(Buffer.compare(zstd.decompress(packed, raw.length), raw)).toBe(0);
  });
});
