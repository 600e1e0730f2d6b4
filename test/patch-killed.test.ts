/**
 * `xbzrle patch` killed with SIGKILL at random moments (12 runs of the built
 * CLI, a 24 MiB image): the output is either the old file or the whole new
 * image, never a mix, and the inputs are untouched; a normal run afterwards
 * sweeps the temp files the killed runs left. A soak of child processes
 * (~4 s): `npm run test:slow`, which CI runs.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, rng } from './helpers/bytes.js';
import { CLI } from './helpers/cli.js';

const PS = 4096;

describe('xbzrle patch killed with SIGKILL at random moments', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'xbzrle-kill-'));
    const rand = rng(7);
    const old = randomBytes(24 << 20, rand);
    const next = old.slice();
    for (let i = 0; i < next.length; i += 997) next[i] = next[i]! ^ 0x3c;
    await writeFile(join(dir, 'old.img'), old);
    await writeFile(join(dir, 'new.img'), next);
    await writeFile(join(dir, 'out.img'), new Uint8Array(PS).fill(1)); // an older output
    const diff = spawn(process.execPath, [CLI, 'diff', join(dir, 'old.img'), join(dir, 'new.img'), '-o', join(dir, 'd.xd'), '-q']);
    await new Promise((r) => diff.on('exit', r));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves either the old output or the whole new one, and the inputs unchanged', async () => {
    // Byte comparisons, not hashes: 12 rounds of sha256 over three 24 MiB files took ~3 s.
    const inputs = ['old.img', 'd.xd'].map((n) => [n, readFileSync(join(dir, n))] as const);
    const oldOut = readFileSync(join(dir, 'out.img'));
    const want = readFileSync(join(dir, 'new.img'));
    const rand = rng(11);
    const seen = { old: 0, new: 0 };
    for (let t = 0; t < 12; t++) {
      const child = spawn(process.execPath, [CLI, 'patch', join(dir, 'old.img'), join(dir, 'd.xd'), '-o', join(dir, 'out.img'), '-f', '-q']);
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 250)));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      const now = readFileSync(join(dir, 'out.img'));
      const isNew = now.equals(want);
      expect(isNew || now.equals(oldOut), `round ${t}: out.img is neither the old output nor the new image (${now.length} bytes)`).toBe(true);
      seen[isNew ? 'new' : 'old']++;
      for (const [name, bytes] of inputs) expect(readFileSync(join(dir, name)).equals(bytes), `round ${t}: ${name} changed`).toBe(true);
      if (isNew) await writeFile(join(dir, 'out.img'), new Uint8Array(PS).fill(1));
    }
    expect(seen.old).toBeGreaterThan(0);
    // A normal run afterwards completes and sweeps the temp files the killed runs left.
    const done = spawn(process.execPath, [CLI, 'patch', join(dir, 'old.img'), join(dir, 'd.xd'), '-o', join(dir, 'out.img'), '-f', '-q']);
    expect(await new Promise((r) => done.on('exit', r))).toBe(0);
    expect(readFileSync(join(dir, 'out.img')).equals(want)).toBe(true);
    expect(readdirSync(dir).filter((n) => n.endsWith('.xbzrle-tmp'))).toEqual([]);
    expect(existsSync(join(dir, 'old.img'))).toBe(true);
  }, 60_000);
});
