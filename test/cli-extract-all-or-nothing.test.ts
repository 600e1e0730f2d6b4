/**
 * `extract` writes all of its block files or none: a block whose file name
 * the folder cannot hold is refused before anything is written, and when a
 * rename fails midway the files already renamed are undone (a replaced file
 * put back). Found by a fuzz campaign: a failed run left `a.bin` behind, and
 * with `-f` replaced the user's `a.bin`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commitAll, removeTempsSync, TempFile } from '../lib/cli/files.js';
import { CliContext } from '../lib/cli/io.js';
import { runMain, scratchFolders } from './helpers/cli.js';
import { buildRecords } from './helpers/streams.js';

const PS = 4096;
const scratch = scratchFolders('xbzrle-extract-all-');

/** A stream of two blocks, `a` and one named `name`, a page each. */
function twoBlocks(name: string): Uint8Array {
  return buildRecords((w) => {
    w.memSize([
      { id: 'a', length: 2 * PS },
      { id: name, length: 2 * PS },
    ]);
    w.page('a', 0, new Uint8Array(PS).fill(1), 0);
    w.page(name, 0, new Uint8Array(PS).fill(2), 0);
    w.eos();
  });
}

describe('extract: all block files or none', () => {
  it('a block name too long for a file name is refused before anything is written, an existing file kept', async () => {
    const dir = scratch.fresh('long');
    const input = join(dir, 's.xs');
    writeFileSync(input, twoBlocks('b'.repeat(252))); // 256 bytes with ".bin"
    const out = join(dir, 'out');
    const r = await runMain(['extract', input, '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/file name too long for block "b{252}" \(256 bytes, at most 255\); nothing written/);
    expect(existsSync(out)).toBe(false); // the folder it made is gone again
    mkdirSync(out);
    writeFileSync(join(out, 'a.bin'), 'precious');
    expect((await runMain(['extract', input, '-o', out, '-f', '-q'])).code).toBe(1);
    expect(readFileSync(join(out, 'a.bin'), 'utf8')).toBe('precious');
    expect(readdirSync(out)).toEqual(['a.bin']);
    // 251 bytes (255 with ".bin") are written.
    writeFileSync(input, twoBlocks('b'.repeat(251)));
    expect((await runMain(['extract', input, '-o', out, '-f', '-q'])).code).toBe(0);
    expect(readFileSync(join(out, 'a.bin'))).toEqual(Buffer.alloc(2 * PS).fill(1, 0, PS));
  });

  it('a rename that fails midway undoes the ones before it: a replaced file comes back, a new one goes', async () => {
    const dir = scratch.fresh('rollback');
    const ctx = new CliContext();
    const make = (name: string, bytes: string): TempFile => {
      const t = new TempFile(ctx, join(dir, name), name);
      writeFileSync(t.path, bytes);
      return t;
    };
    writeFileSync(join(dir, 'a.bin'), 'precious');
    const a = make('a.bin', 'new a');
    const b = make('b.bin', 'new b');
    const c = make('c.bin', 'new c');
    mkdirSync(join(dir, 'c.bin', 'x'), { recursive: true }); // a folder in the way: its rename fails
    await expect(commitAll(ctx, [a, b, c], true)).rejects.toThrow();
    expect(ctx.undo).toEqual([]);
    expect(readFileSync(join(dir, 'a.bin'), 'utf8')).toBe('precious');
    expect(existsSync(join(dir, 'b.bin'))).toBe(false);
    // No backup left; the failed one's temp is its caller's to remove (abort).
    await c.abort();
    expect(readdirSync(dir).sort()).toEqual(['a.bin', 'c.bin']);
    // Without the folder in the way, all three land.
    const a2 = make('a.bin', 'new a');
    const b2 = make('b.bin', 'new b');
    const d2 = make('d.bin', 'new d');
    await commitAll(ctx, [a2, b2, d2], true);
    expect(['a.bin', 'b.bin', 'd.bin'].map((f) => readFileSync(join(dir, f), 'utf8'))).toEqual(['new a', 'new b', 'new d']);
    expect(readdirSync(dir).sort()).toEqual(['a.bin', 'b.bin', 'c.bin', 'd.bin']);
  });

  it('interrupted midway (a signal), the outputs committed so far are undone and no backup is left', async () => {
    const dir = scratch.fresh('signal');
    const ctx = new CliContext();
    writeFileSync(join(dir, 'a.bin'), 'precious');
    const a = new TempFile(ctx, join(dir, 'a.bin'), 'a.bin');
    writeFileSync(a.path, 'new a');
    const b = new TempFile(ctx, join(dir, 'b.bin'), 'b.bin');
    writeFileSync(b.path, 'new b');
    const c = new TempFile(ctx, join(dir, 'c.bin'), 'c.bin');
    writeFileSync(c.path, 'new c');
    // Stop the commit when c's turn comes, as a signal handler would run there.
    let interrupted = false;
    const commitC = c.commit.bind(c);
    c.commit = async (force: boolean) => {
      removeTempsSync(ctx); // the bin's signal handler
      interrupted = true;
      return commitC(force);
    };
    await commitAll(ctx, [a, b, c], true).catch(() => undefined);
    expect(interrupted).toBe(true);
    expect(readFileSync(join(dir, 'a.bin'), 'utf8')).toBe('precious');
    expect(existsSync(join(dir, 'b.bin'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f !== 'c.bin' && f !== 'a.bin')).toEqual([]);
  });
});
