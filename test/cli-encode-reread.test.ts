import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { pairedRuns } from '../lib/cli/commands/encode.js';
import { RoundCheck } from '../lib/cli/round-check.js';
import { getScanner } from '../lib/delta/scan.js';
import { EncoderCore } from '../lib/core/encoder.js';
import { allocPages, freePages } from '../lib/index.js';
import { decodeChunks } from './helpers/streams.js';

// `xbzrle encode IMAGE...` reads each image twice (for its round, then beside the
// next image, whose round is sent against it) instead of caching it: a page that
// changed in between (a file written meanwhile, also through a shared mapping, which
// moves no timestamp) would give the receiver a different base. Such pages go whole.

const dir = mkdtempSync(join(tmpdir(), 'xbzrle-reread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PS = 4096;

async function collect(path: string, before: string | null, run: number): Promise<[Uint8Array, Uint8Array | null][]> {
  const out: [Uint8Array, Uint8Array | null][] = [];
  for await (const [a, b] of pairedRuns(path, before, run, PS)) out.push([a.slice(), b === null ? null : b.slice()]);
  return out;
}

/** An image `a` of `pages` pages in the kernel's memory, and two copies of it (`b`, `again`) for a test to change. */
function threeImages(pages: number): { a: Uint8Array; b: Uint8Array; again: Uint8Array } {
  const a = allocPages(pages);
  const b = allocPages(pages);
  const again = allocPages(pages);
  for (let i = 0; i < a.length; i += 61) a[i] = i & 0xff;
  b.set(a);
  again.set(a);
  return { a, b, again };
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

  it('flags the pages of a second read that differ from what was sent, and only those', () => {
    const pages = 40;
    const check = RoundCheck.make(pages, PS, 16);
    if (check === null) return; // no page scan here: images are cached instead (the CLI tests cover it)
    try {
      const { a, b, again } = threeImages(pages);
      b[5 * PS + 9] = 0xee; // round 2 changes page 5
      for (const p of [3, 17, 39]) again[p * PS + 100] = again[p * PS + 100]! ^ 0x01; // the image before, written between its reads
      again.fill(0, 20 * PS, 21 * PS); // page 20 zeroed meanwhile
      const flagged: number[] = [];
      for (let first = 0; first < pages; first += 16) {
        const n = Math.min(16, pages - first);
        expect(check.pass(a.subarray(first * PS, (first + n) * PS), null, first)).toBeNull(); // round 1: nothing to check
      }
      for (let first = 0; first < pages; first += 16) {
        const n = Math.min(16, pages - first);
        const f = check.pass(b.subarray(first * PS, (first + n) * PS), again.subarray(first * PS, (first + n) * PS), first);
        if (f !== null) f.forEach((x, i) => x !== 0 && flagged.push(first + i));
      }
      expect(flagged).toEqual([3, 17, 20, 39]);
      // Round 3 against round 2 read again unchanged: nothing flagged.
      for (let first = 0; first < pages; first += 16) {
        const n = Math.min(16, pages - first);
        expect(check.pass(a.subarray(first * PS, (first + n) * PS), b.subarray(first * PS, (first + n) * PS), first)).toBeNull();
      }
      for (const x of [a, b, again]) freePages(x);
    } finally {
      check.dispose();
    }
  });

  it('in the last round hashes only the pages read again: flags those that differ from what was sent, records nothing', () => {
    const pages = 40;
    const check = RoundCheck.make(pages, PS, 16);
    if (check === null) return; // no page scan here
    const runs = (f: (first: number, n: number) => Uint8Array | null): number[] => {
      const flagged: number[] = [];
      for (let first = 0; first < pages; first += 16) {
        const got = f(first, Math.min(16, pages - first));
        if (got !== null) got.forEach((x, i) => x !== 0 && flagged.push(first + i));
      }
      return flagged;
    };
    try {
      const { a, b, again } = threeImages(pages);
      b[7 * PS + 1] = b[7 * PS + 1]! ^ 0x5a; // the last round changes page 7
      again[2 * PS + 5] = again[2 * PS + 5]! ^ 0x01; // round 1's image written between its reads
      again[33 * PS + 4000] = again[33 * PS + 4000]! ^ 0x80;
      const at = (x: Uint8Array, first: number, n: number): Uint8Array => x.subarray(first * PS, (first + n) * PS);
      expect(runs((first, n) => check.pass(at(a, first, n), null, first))).toEqual([]);
      expect(runs((first, n) => check.pass(at(b, first, n), at(again, first, n), first, true))).toEqual([2, 33]);
      // The last round recorded nothing: what was sent is still round 1's image (b's page 7 would differ).
      expect(runs((first, n) => check.pass(at(b, first, n), at(a, first, n), first, true))).toEqual([]);
      // A single round (the first is the last): nothing to check, nothing hashed.
      const single = RoundCheck.make(pages, PS, 16)!;
      const scanner = getScanner()!;
      const hashPages = vi.spyOn(scanner, 'hashPages');
      const scan = vi.spyOn(scanner, 'scan');
      try {
        expect(runs((first, n) => single.pass(at(a, first, n), null, first, true))).toEqual([]);
        expect([hashPages.mock.calls.length, scan.mock.calls.length]).toEqual([0, 0]);
        // A last round with the image before it: that image's pages hashed (a call a run), no scan of both.
        expect(runs((first, n) => check.pass(at(b, first, n), at(a, first, n), first, true))).toEqual([]);
        expect([hashPages.mock.calls.length, scan.mock.calls.length]).toEqual([3, 0]);
      } finally {
        hashPages.mockRestore();
        scan.mockRestore();
        single.dispose();
        for (const x of [a, b, again]) freePages(x);
      }
    } finally {
      check.dispose();
    }
  });

  it('a page read differently the second time goes whole: the receiver gets what was read', async () => {
    const pages = 64;
    const round1 = allocPages(pages);
    for (let i = 0; i < round1.length; i += 37) round1[i] = (i * 7) & 0xff;
    const round2 = allocPages(pages);
    round2.set(round1);
    for (let p = 0; p < pages; p += 4) round2[p * PS + 11] = round2[p * PS + 11]! ^ 0x42;
    // Round 1's image as read again: written meanwhile, some pages to what round 2 then
    // reads (a live image), one to something else.
    const reread = allocPages(pages);
    reread.set(round1);
    for (let p = 0; p < pages; p += 8) reread.set(round2.subarray(p * PS, (p + 1) * PS), p * PS);
    reread[3 * PS + 200] = reread[3 * PS + 200]! ^ 0x99;
    const run = async (withCheck: boolean): Promise<Uint8Array> => {
      const check = RoundCheck.make(pages, PS, pages);
      const core = new EncoderCore({ cacheSize: pages * PS, blocks: [{ id: 'ram', length: pages * PS }], previousRounds: true });
      const chunks: Uint8Array[] = [];
      const drain = (): void => {
        for (let c = core.next(); c !== undefined; c = core.next()) chunks.push(c.slice());
      };
      try {
        drain();
        const f1 = check?.pass(round1, null, 0) ?? null;
        core.feedRound({ block: 'ram', offset: 0, data: round1 }, null, f1);
        drain();
        core.sync(false);
        drain();
        const f2 = check?.pass(round2, reread, 0) ?? null;
        core.feedRound({ block: 'ram', offset: 0, data: round2 }, reread, withCheck ? f2 : null);
        drain();
        core.end();
        drain();
      } finally {
        core.dispose(true);
        check?.dispose();
      }
      const image = new Uint8Array(pages * PS);
      for (const p of (await decodeChunks(chunks)).pages) image.set(p.data, p.offset);
      return image;
    };
    if (RoundCheck.make(1, PS, 1) === null) return; // no page scan here
    expect(Buffer.from(await run(true)).equals(Buffer.from(round2))).toBe(true);
    // Without the check the deltas were made against bytes the receiver never got.
    expect(Buffer.from(await run(false)).equals(Buffer.from(round2))).toBe(false);
  });
});
