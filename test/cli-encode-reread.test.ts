import { mkdtempSync, rmSync, utimesSync, writeFileSync, appendFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkUnchanged, identityOf, pairedRuns } from '../lib/cli/commands/encode.js';
import { CliError } from '../lib/cli/errors.js';

// `xbzrle encode IMAGE...` reads each image twice (for its round, then beside the
// next image, whose round is sent against it) instead of caching it: an image that
// changed in between would give the receiver a different base. It is refused.

const dir = mkdtempSync(join(tmpdir(), 'xbzrle-reread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PS = 4096;

async function collect(path: string, before: string | null, run: number): Promise<[Uint8Array, Uint8Array | null][]> {
  const out: [Uint8Array, Uint8Array | null][] = [];
  for await (const [a, b] of pairedRuns(path, before, run, PS)) out.push([a.slice(), b === null ? null : b.slice()]);
  return out;
}

describe('encode reads an image again for the next round', () => {
  it('pairs every run of an image with the same run of the image before it', async () => {
    const a = new Uint8Array(10 * PS).map((_, i) => i % 251);
    const b = new Uint8Array(10 * PS).map((_, i) => i % 241);
    writeFileSync(join(dir, 'a'), a);
    writeFileSync(join(dir, 'b'), b);
    const pairs = await collect(join(dir, 'b'), join(dir, 'a'), 3 * PS);
    expect(pairs.map(([x]) => x.length)).toEqual([3 * PS, 3 * PS, 3 * PS, PS]);
    expect(Buffer.concat(pairs.map(([x]) => x)).equals(b)).toBe(true);
    expect(Buffer.concat(pairs.map(([, y]) => y!)).equals(a)).toBe(true);
    expect((await collect(join(dir, 'a'), null, 4 * PS)).every(([, y]) => y === null)).toBe(true);
  });

  it('refuses an image before that is now shorter or longer', async () => {
    writeFileSync(join(dir, 'c'), new Uint8Array(8 * PS));
    writeFileSync(join(dir, 'short'), new Uint8Array(5 * PS));
    writeFileSync(join(dir, 'long'), new Uint8Array(9 * PS));
    await expect(collect(join(dir, 'c'), join(dir, 'short'), 2 * PS)).rejects.toThrow(/short: changed while it was being encoded/);
    await expect(collect(join(dir, 'c'), join(dir, 'long'), 2 * PS)).rejects.toThrow(/long: changed while it was being encoded/);
  });

  it('refuses an image whose contents, times or inode changed after it was first looked at', async () => {
    const p = join(dir, 'd');
    writeFileSync(p, new Uint8Array(4 * PS));
    const was = identityOf(statSync(p, { bigint: true }));
    await expect(checkUnchanged(p, was)).resolves.toBeUndefined();
    // Rewritten in place with the same size: the modification time moves.
    const t = new Date(Date.now() + 5000);
    utimesSync(p, t, t);
    await expect(checkUnchanged(p, was)).rejects.toThrow(CliError);
    await expect(checkUnchanged(p, was)).rejects.toThrow(/d: changed while it was being encoded/);
    // Grown.
    const was2 = identityOf(statSync(p, { bigint: true }));
    appendFileSync(p, new Uint8Array(PS));
    await expect(checkUnchanged(p, was2)).rejects.toThrow(/changed while/);
    // Replaced by another file (a new inode).
    const was3 = identityOf(statSync(p, { bigint: true }));
    rmSync(p);
    writeFileSync(join(dir, 'other'), new Uint8Array(5 * PS));
    writeFileSync(p, new Uint8Array(5 * PS));
    await expect(checkUnchanged(p, was3)).rejects.toThrow(/changed while/);
    rmSync(p);
    await expect(checkUnchanged(p, was3)).rejects.toThrow(/d/);
  });
});
