/**
 * The snapshot-delta commands as users run them: `diff` writes the checked
 * container by default, `patch` refuses (and writes nothing) on corruption,
 * truncation, a wrong base or a page-size mismatch, `verify` and `stat` check
 * without applying, chains and pipes work, zero pages stay holes, and
 * `--format qemu` keeps QEMU's plain framing. In-process (`runMain`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomBytes, rng } from './helpers/bytes.js';
import { scratchFolders, runMain, tempFilesIn, type CliResult } from './helpers/cli.js';

const PS = 4096;
const scratch = scratchFolders('xbzrle-cli-delta-');
const freshDir = scratch.fresh;

function ok(r: CliResult): void {
  expect(r.code, `stderr: ${r.stderr}`).toBe(0);
}

function refused(r: CliResult, pattern: RegExp): void {
  expect(r.code, `stderr: ${r.stderr}`).toBe(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
}

/** OLD, NEW (small edits, a rewritten page, a zeroed page, a moved page) and a third image after NEW. */
function images(dir: string, pages = 64): { a: string; b: string; c: string; old: Uint8Array; next: Uint8Array; last: Uint8Array } {
  const r = rng(21);
  const old = randomBytes(pages * PS, r);
  old.fill(0, 10 * PS, 14 * PS);
  const next = old.slice();
  next[3 * PS + 9]! ^= 0x11;
  next.set(randomBytes(PS, r), 5 * PS);
  next.fill(0, 7 * PS, 8 * PS);
  next.copyWithin(20 * PS, 40 * PS, 41 * PS);
  const last = next.slice();
  last[30 * PS + 1]! ^= 0x22;
  const put = (n: string, d: Uint8Array): string => {
    writeFileSync(join(dir, n), d);
    return join(dir, n);
  };
  return { a: put('a.img', old), b: put('b.img', next), c: put('c.img', last), old, next, last };
}

describe('diff and patch with the checked container', () => {
  it('round-trips, through files and pipes both ways, and stat/verify check it', async () => {
    const dir = freshDir('rt');
    const { a, b, next } = images(dir);
    const d = join(dir, 'ab.xbd');
    ok(await runMain(['diff', a, b, '-o', d, '-q']));
    expect(readFileSync(d).subarray(0, 5)).toEqual(Buffer.from([0x89, 0x58, 0x42, 0x5a, 0x44]));
    ok(await runMain(['patch', a, d, '-o', join(dir, 'b2'), '-q']));
    expect(Buffer.from(readFileSync(join(dir, 'b2'))).equals(Buffer.from(next))).toBe(true);
    // diff to stdout, patch from stdin; OLD from stdin for diff.
    const piped = await runMain(['diff', a, b]);
    ok(piped);
    ok(await runMain(['patch', a, '-o', join(dir, 'b3'), '-q'], { input: piped.stdout }));
    expect(Buffer.from(readFileSync(join(dir, 'b3'))).equals(Buffer.from(next))).toBe(true);
    const fromStdin = await runMain(['diff', '-', b, '-o', join(dir, 'in.xbd'), '-q'], { input: readFileSync(a) });
    ok(fromStdin);
    ok(await runMain(['patch', a, join(dir, 'in.xbd'), '-o', join(dir, 'b4'), '-q']));
    expect(Buffer.from(readFileSync(join(dir, 'b4'))).equals(Buffer.from(next))).toBe(true);
    const st = await runMain(['stat', d]);
    ok(st);
    expect(st.stdout.toString()).toMatch(/xbzrle delta file/);
    const json = JSON.parse((await runMain(['stat', d, '--json'])).stdout.toString());
    expect(json).toMatchObject({ format: 'xbzrle', pageSize: PS, oldSize: 64 * PS, newSize: 64 * PS });
    const v = await runMain(['verify', d, a]);
    ok(v);
    expect(v.stdout.toString() + v.stderr).toMatch(/xbzrle delta/);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('a chain: patch BASE D1 D2 -o NEW', async () => {
    const dir = freshDir('chain');
    const { a, b, c, last } = images(dir);
    ok(await runMain(['diff', a, b, '-o', join(dir, 'd1'), '-q']));
    ok(await runMain(['diff', b, c, '-o', join(dir, 'd2'), '-q']));
    ok(await runMain(['patch', a, join(dir, 'd1'), join(dir, 'd2'), '-o', join(dir, 'c2'), '-q']));
    expect(Buffer.from(readFileSync(join(dir, 'c2'))).equals(Buffer.from(last))).toBe(true);
    // Out of order: d2 is not made against a.
    refused(await runMain(['patch', a, join(dir, 'd2'), join(dir, 'd1'), '-o', join(dir, 'bad')]), /not the base this delta was made from/);
    expect(existsSync(join(dir, 'bad'))).toBe(false);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('zero pages of NEW stay holes in the output', async () => {
    const dir = freshDir('sparse');
    const pages = 2048; // 8 MiB, all zero but a few pages
    const old = new Uint8Array(pages * PS);
    const next = old.slice();
    for (const p of [1, 700, 1500]) next.fill(7, p * PS, p * PS + PS);
    writeFileSync(join(dir, 'a'), old);
    writeFileSync(join(dir, 'b'), next);
    ok(await runMain(['diff', join(dir, 'a'), join(dir, 'b'), '-o', join(dir, 'd'), '-q']));
    ok(await runMain(['patch', join(dir, 'a'), join(dir, 'd'), '-o', join(dir, 'out'), '-q']));
    expect(Buffer.from(readFileSync(join(dir, 'out'))).equals(Buffer.from(next))).toBe(true);
    expect(statSync(join(dir, 'out')).blocks * 512).toBeLessThan(1 << 20); // 8 MiB long, a few pages on disk
  });
});

describe('patch refuses and writes nothing', () => {
  async function setup(): Promise<{ dir: string; a: string; d: string; delta: Buffer; out: string }> {
    const dir = freshDir('refuse');
    const { a, b } = images(dir);
    const d = join(dir, 'd');
    ok(await runMain(['diff', a, b, '-o', d, '-q']));
    const out = join(dir, 'out');
    writeFileSync(out, 'old output');
    return { dir, a, d, delta: readFileSync(d), out };
  }

  function untouched(dir: string, out: string): void {
    expect(readFileSync(out, 'utf8')).toBe('old output');
    expect(tempFilesIn(dir)).toEqual([]);
  }

  it('when any byte of the delta is flipped (header, frames, trailer) or it is cut short', async () => {
    const { dir, a, delta, out } = await setup();
    const spots = [0, 9, 30, 63, 64, 70, 100, delta.length >> 1, delta.length - 48, delta.length - 20, delta.length - 1];
    for (const at of spots) {
      const bad = Buffer.from(delta);
      bad[at]! ^= 0x04;
      const p = join(dir, `bad-${at}`);
      writeFileSync(p, bad);
      refused(await runMain(['patch', a, p, '-o', out, '-f']), /corrupt|not a delta|truncated|version|magic|not a RAM record stream/i);
      untouched(dir, out);
      refused(await runMain(['verify', p]), /./);
    }
    for (const cut of [10, 64, 100, delta.length - 1]) {
      const p = join(dir, `cut-${cut}`);
      writeFileSync(p, delta.subarray(0, cut));
      refused(await runMain(['patch', a, p, '-o', out, '-f']), /truncated|corrupt/i);
      untouched(dir, out);
    }
  });

  it('when OLD is not the base (size or content), unless --no-verify for content', async () => {
    const { dir, a, d, out } = await setup();
    const small = join(dir, 'small');
    writeFileSync(small, readFileSync(a).subarray(0, 16 * PS));
    refused(await runMain(['patch', small, d, '-o', out, '-f']), new RegExp(`^xbzrle: ${small}: not the base this delta was made from \\(size 64 KiB, expected 256 KiB\\)`));
    untouched(dir, out);
    // Another image of the same size, differing only in a page NEW replaces wholly (page 5).
    const other = Buffer.from(readFileSync(a));
    other[5 * PS + 3]! ^= 0xff;
    const o2 = join(dir, 'other');
    writeFileSync(o2, other);
    refused(await runMain(['patch', o2, d, '-o', out, '-f']), /not the base this delta was made from/);
    untouched(dir, out);
    refused(await runMain(['verify', d, o2]), /not the base/);
    ok(await runMain(['patch', o2, d, '-o', join(dir, 'nv'), '--no-verify', '-q']));
    expect(readFileSync(join(dir, 'nv')).equals(readFileSync(join(dir, 'b.img')))).toBe(true);
  });

  it('when --page-size differs from the delta\'s', async () => {
    const { dir, a, d, out } = await setup();
    refused(await runMain(['patch', a, d, '-o', out, '-f', '--page-size', '8192']), /page size is 4096, not 8192/);
    untouched(dir, out);
  });
});

describe('--format qemu', () => {
  it('writes the plain RAM record stream, which patch, stat and verify read and name', async () => {
    const dir = freshDir('qemu');
    const { a, b, next } = images(dir);
    const d = join(dir, 'd.xs');
    ok(await runMain(['diff', a, b, '-o', d, '--format', 'qemu', '-q']));
    expect(readFileSync(d).readBigUInt64BE(0) & 0x3ffn).toBe(0x04n); // MEM_SIZE first
    const st = await runMain(['stat', d]);
    ok(st);
    expect(st.stdout.toString()).toMatch(/RAM record stream/);
    const v = await runMain(['verify', d]);
    ok(v);
    expect(v.stdout.toString() + v.stderr).toMatch(/qemu delta/);
    ok(await runMain(['patch', a, d, '-o', join(dir, 'b2'), '-q']));
    expect(Buffer.from(readFileSync(join(dir, 'b2'))).equals(Buffer.from(next))).toBe(true);
    // --target on a plain stream: the receiving machine's blocks.
    writeFileSync(join(dir, 'small.json'), JSON.stringify([{ id: 'ram', length: PS }]));
    refused(await runMain(['patch', a, d, '-o', join(dir, 'b3'), '--target', join(dir, 'small.json')]), /Size mismatch/);
    expect(readdirSync(dir)).not.toContain('b3');
  });
});

describe('block names', () => {
  it('a non-ASCII --block name goes through diff and patch (UTF-8, as QEMU names)', async () => {
    const dir = freshDir('utf8');
    const { a, b, next } = images(dir);
    ok(await runMain(['diff', a, b, '-o', join(dir, 'd'), '--block', 'räm/ü', '-q']));
    ok(await runMain(['patch', a, join(dir, 'd'), '-o', join(dir, 'b2'), '-q']));
    expect(Buffer.from(readFileSync(join(dir, 'b2'))).equals(Buffer.from(next))).toBe(true);
  });
});

describe('tools people have', () => {
  it.skipIf(spawnSync('sh', ['-c', 'command -v cmp']).status !== 0)('the patched image equals NEW for cmp', async () => {
    const dir = freshDir('cmp');
    const { a, b } = images(dir);
    ok(await runMain(['diff', a, b, '-o', join(dir, 'd'), '-q']));
    ok(await runMain(['patch', a, join(dir, 'd'), '-o', join(dir, 'b2'), '-q']));
    expect(spawnSync('cmp', [b, join(dir, 'b2')]).status).toBe(0);
  });
});
