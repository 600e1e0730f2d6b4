/**
 * The delta format's WebAssembly dependencies (`@bokuweb/zstd-wasm`: seven
 * CommonJS files and 250 KB of WebAssembly) load on first use, not with the
 * command's code: `stat` of a plain QEMU stream never loads zstd (~25 ms of
 * every such run on the bench VM), and `stat` of a compressed delta does.
 * Checked in a child process: a preloaded script reports, at exit, whether
 * zstd's module was ever loaded.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, scratchFolders } from './helpers/cli.js';

const dirs = scratchFolders('xbzrle-lazy-wasm-');

const REPORT = `process.on('exit', () => {
  const loaded = Object.keys(require('node:module')._cache).some((k) => k.includes('zstd-wasm'));
  process.stderr.write(loaded ? 'zstd: loaded\\n' : 'zstd: not loaded\\n');
});
`;

describe("the delta format's WebAssembly dependencies", () => {
  it('are not loaded by stat of a plain stream, and are by stat of a compressed delta', async () => {
    const dir = dirs.fresh('stat');
    const report = join(dir, 'report.cjs');
    writeFileSync(report, REPORT);
    const env = { NODE_OPTIONS: `--require ${report}` };
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    const img = new Uint8Array(8 * 4096).fill(3);
    writeFileSync(a, img);
    img[4096 * 5 + 7] = 9;
    writeFileSync(b, img);
    expect((await runCli(['encode', a, b, '-o', join(dir, 'plain.xs'), '-q'])).code).toBe(0);
    expect((await runCli(['diff', a, b, '-o', join(dir, 'delta.xbzd'), '-q'])).code).toBe(0);

    const plain = await runCli(['stat', join(dir, 'plain.xs')], { env });
    expect(plain.code).toBe(0);
    expect(plain.stderr).toContain('zstd: not loaded');
    const delta = await runCli(['stat', join(dir, 'delta.xbzd')], { env });
    expect(delta.code).toBe(0);
    expect(delta.stderr).toContain('zstd: loaded');
  });
});
