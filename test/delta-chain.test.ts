import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage, type DeltaInput, type DeltaStats } from '../lib/delta/index.js';
import { fillPage, makePair, rng } from './delta-images.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-chain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string): string => join(dir, n);
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;
/** Files left in the folder whose names start with `prefix` (temp files are `.NAME.PID.N.xbzrle-tmp`). */
const temps = (): string[] => readdirSync(dir).filter((f) => f.endsWith('.xbzrle-tmp'));

/**
 * Images I0..In where each one moves and duplicates pages that the delta before it changed (so a
 * delta's references point at pages of an intermediate image that only an earlier delta's records
 * give), backwards and forwards, across steps (256 pages) and frames.
 */
function chainImages(seed: number, n: number, pages: number, ps = 4096, grow = 0): Uint8Array[] {
  const r = rng(seed);
  const pick = (lim: number): number => Math.floor(r() * lim);
  const imgs: Uint8Array[] = [];
  const first = new Uint8Array(pages * ps);
  for (let q = 0; q < pages; q++) fillPage(first, q, ps, pick(4), r);
  imgs.push(first);
  let changed: number[] = [];
  for (let k = 1; k <= n; k++) {
    const prev = imgs[k - 1]!;
    const size = prev.length / ps + (k === n ? grow : 0);
    const img = new Uint8Array(size * ps);
    img.set(prev.subarray(0, Math.min(prev.length, img.length)));
    const lim = Math.min(size, prev.length / ps);
    const now: number[] = [];
    // pages the previous delta changed, copied elsewhere (both directions, far away)
    for (const c of changed.slice(0, 60)) {
      const to = pick(lim);
      img.set(prev.subarray(c * ps, c * ps + ps), to * ps);
      now.push(to);
    }
    // fresh random pages, some duplicated (references to earlier NEW pages)
    for (let i = 0; i < 400; i++) {
      const q = pick(size);
      fillPage(img, q, ps, 3, r);
      now.push(q);
      if (i % 5 === 0) {
        const d = pick(size);
        img.copyWithin(d * ps, q * ps, q * ps + ps);
        now.push(d);
      }
    }
    // small edits (XBZRLE) of pages the previous delta changed or moved
    for (const c of changed.slice(60, 120)) {
      img[c * ps + 17] = img[c * ps + 17]! ^ 0x33;
      now.push(c);
    }
    // OLD pages moved (references to the image before)
    for (let i = 0; i < 40; i++) {
      const from = pick(lim);
      const to = pick(size);
      img.set(prev.subarray(from * ps, from * ps + ps), to * ps);
      now.push(to);
    }
    // zeroed pages
    for (let i = 0; i < 30; i++) fillPage(img, pick(size), ps, 0, r);
    changed = now;
    imgs.push(img);
  }
  return imgs;
}

/** Writes the images and their deltas: `${tag}-sK` and `${tag}-dK`. */
async function makeChain(tag: string, imgs: Uint8Array[], ps = 4096): Promise<string[]> {
  imgs.forEach((img, i) => writeFileSync(p(`${tag}-s${i}`), img));
  const ds: string[] = [];
  for (let i = 1; i < imgs.length; i++) {
    await diffImages(p(`${tag}-s${i - 1}`), p(`${tag}-s${i}`), p(`${tag}-d${i}`), { pageSize: ps });
    ds.push(p(`${tag}-d${i}`));
  }
  return ds;
}

/** The result of applying the deltas one call each. */
async function oneByOne(base: string, ds: string[], tag: string): Promise<Uint8Array> {
  let cur = base;
  for (let i = 0; i < ds.length; i++) {
    const out = p(`${tag}-step${i}`);
    await patchImage(cur, ds[i]!, out, { force: true });
    cur = out;
  }
  return readFileSync(cur);
}

describe('chains', () => {
  it('base + three deltas in one call give the last image; a wrong order is refused', async () => {
    const imgs: Uint8Array[] = [];
    let cur = makePair(31, 80).oldImg;
    imgs.push(cur);
    for (let i = 1; i <= 3; i++) {
      const next = makePair(31 + i, 80, 4096, 80 + i * 3).newImg;
      // keep most of cur so the deltas are deltas
      next.set(cur.subarray(0, 40 * 4096));
      imgs.push(next);
      cur = next;
    }
    imgs.forEach((img, i) => writeFileSync(p(`s${i}`), img));
    for (let i = 1; i <= 3; i++) await diffImages(p(`s${i - 1}`), p(`s${i}`), p(`d${i}`));
    const stats = await patchImage(p('s0'), [p('d1'), p('d2'), p('d3')], p('out'));
    expect(stats).toHaveLength(3);
    expect(Buffer.compare(readFileSync(p('out')), imgs[3]!)).toBe(0);
    await expect(patchImage(p('s0'), [p('d2'), p('d1')], p('bad'))).rejects.toMatchObject({ code: 'ERR_DELTA_WRONG_BASE' });
    await expect(patchImage(p('s0'), [p('d1'), p('d3')], p('bad'))).rejects.toMatchObject({ code: 'ERR_DELTA_WRONG_BASE', message: expect.stringContaining('the result of delta 1') });
  });

  for (const n of [2, 3, 4]) {
    it(`${n} deltas whose references point into intermediate images (moved and duplicated pages, forwards and backwards), byte-exact against one by one`, async () => {
      const imgs = chainImages(100 + n, n, 900);
      const ds = await makeChain(`c${n}`, imgs);
      const stats = await patchImage(p(`c${n}-s0`), ds, p(`c${n}-out`));
      const out = readFileSync(p(`c${n}-out`));
      expect(same(out, imgs[n]!)).toBe(true);
      expect(same(out, await oneByOne(p(`c${n}-s0`), ds, `c${n}`))).toBe(true);
      expect(stats).toHaveLength(n);
      // every delta after the first refers to pages of the image before it, and to its own earlier pages
      for (const s of stats.slice(1)) {
        expect(s.refOld).toBeGreaterThan(10);
        expect(s.refNew).toBeGreaterThan(10);
        expect(s.xbzrle).toBeGreaterThan(10);
      }
      expect(stats.map((s: DeltaStats) => s.frames).every((f) => f > 1)).toBe(true); // several frames: the frame index is used
      expect(temps()).toEqual([]);
    });
  }

  for (const ps of [1024, 8192]) {
    it(`page size ${ps}`, async () => {
      const imgs = chainImages(7 + ps, 3, 700, ps);
      const ds = await makeChain(`ps${ps}`, imgs, ps);
      await patchImage(p(`ps${ps}-s0`), ds, p(`ps${ps}-out`), { pageSize: ps });
      expect(same(readFileSync(p(`ps${ps}-out`)), imgs[3]!)).toBe(true);
      // the chain's page size must be the one asked for; the error names the delta
      await expect(patchImage(p(`ps${ps}-s0`), ds, p(`ps${ps}-bad`), { pageSize: 4096 })).rejects.toMatchObject({ code: 'ERR_DELTA_PAGE_SIZE', deltaIndex: 0 });
      expect(existsSync(p(`ps${ps}-bad`))).toBe(false);
    });
  }

  it('images that grow and shrink along the chain', async () => {
    const a = chainImages(55, 2, 600);
    const b = chainImages(56, 1, 900);
    // a0 (600 pages) → a1 → b0 grown from a1 (900 pages) → shrunk to 300 pages
    const b0 = b[0]!;
    b0.set(a[1]!.subarray(0, 500 * 4096));
    const shrunk = b[1]!.slice(0, 300 * 4096);
    shrunk.set(b0.subarray(700 * 4096, 750 * 4096), 10 * 4096); // moved from past the end
    const imgs = [a[0]!, a[1]!, b0, shrunk];
    const ds = await makeChain('gs', imgs);
    await patchImage(p('gs-s0'), ds, p('gs-out'));
    expect(same(readFileSync(p('gs-out')), shrunk)).toBe(true);
  });

  it('deltas from pipes and bytes, with paths, in one chain; nothing left behind', async () => {
    const imgs = chainImages(77, 3, 800);
    const ds = await makeChain('pipe', imgs);
    const list: DeltaInput[] = [createReadStream(ds[0]!, { highWaterMark: 7777 }), readFileSync(ds[1]!), ds[2]!];
    await patchImage(p('pipe-s0'), list, p('pipe-out'));
    expect(same(readFileSync(p('pipe-out')), imgs[3]!)).toBe(true);
    await patchImage(p('pipe-s0'), [ds[0]!, ds[1]!, createReadStream(ds[2]!)], p('pipe-out2'));
    expect(same(readFileSync(p('pipe-out2')), imgs[3]!)).toBe(true);
    expect(temps()).toEqual([]);
  });

  it('a wrong base in the middle of a chain is refused and names the delta', async () => {
    const imgs = chainImages(91, 3, 600);
    const ds = await makeChain('wb', imgs);
    // d2' made against another image of the same size as the result of d1
    const other = imgs[1]!.slice();
    fillPage(other, 5, 4096, 3, rng(1));
    writeFileSync(p('wb-other'), other);
    await diffImages(p('wb-other'), p('wb-s2'), p('wb-d2x'));
    writeFileSync(p('wb-out'), 'keep');
    const err = await patchImage(p('wb-s0'), [ds[0]!, p('wb-d2x'), ds[2]!], p('wb-out'), { force: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_DELTA_WRONG_BASE', deltaIndex: 1, message: expect.stringContaining('the result of delta 1: not the base') });
    expect(readFileSync(p('wb-out'), 'utf8')).toBe('keep');
    // with verify: false the result's checksum still catches it (a page edited from the other base's)
    const edited = other.slice();
    edited[5 * 4096 + 9] = edited[5 * 4096 + 9]! ^ 1;
    writeFileSync(p('wb-edited'), edited);
    await diffImages(p('wb-other'), p('wb-edited'), p('wb-d2e'));
    await expect(patchImage(p('wb-s0'), [ds[0]!, p('wb-d2e')], p('wb-out'), { force: true, verify: false })).rejects.toMatchObject({
      code: 'ERR_DELTA_CORRUPT',
      deltaIndex: 1,
      message: expect.stringContaining('the result of delta 1: not the base'),
    });
    // of another size: refused before anything is read
    const small = chainImages(92, 1, 500);
    writeFileSync(p('wb-small0'), small[0]!);
    writeFileSync(p('wb-small1'), small[1]!);
    await diffImages(p('wb-small0'), p('wb-small1'), p('wb-dsmall'));
    await expect(patchImage(p('wb-s0'), [ds[0]!, ds[1]!, p('wb-dsmall')], p('wb-out'), { force: true })).rejects.toMatchObject({
      code: 'ERR_DELTA_WRONG_BASE',
      deltaIndex: 2,
      message: expect.stringContaining('the result of delta 2'),
    });
    expect(readFileSync(p('wb-out'), 'utf8')).toBe('keep');
    expect(temps()).toEqual([]);
  });

  it('corruption in the second delta writes nothing, wherever it is', async () => {
    const imgs = chainImages(93, 3, 700);
    const ds = await makeChain('cr', imgs);
    const good = readFileSync(ds[1]!);
    const r = rng(5);
    const spots = [70, 100, Math.floor(good.length / 2), good.length - 60, good.length - 10, ...Array.from({ length: 4 }, () => Math.floor(r() * good.length))];
    for (const at of spots) {
      const bad = Buffer.from(good); // a copy (Buffer's slice is a view)
      bad[at] = bad[at]! ^ 0x40;
      writeFileSync(p('cr-d2bad'), bad);
      const err = await patchImage(p('cr-s0'), [ds[0]!, p('cr-d2bad'), ds[2]!], p('cr-out')).catch((e: unknown) => e);
      expect(err, `byte ${at}`).toMatchObject({ code: expect.stringMatching(/^ERR_DELTA_(CORRUPT|TRUNCATED)$/), deltaIndex: 1 });
      expect(existsSync(p('cr-out'))).toBe(false);
    }
    // truncated, from a pipe
    writeFileSync(p('cr-d2cut'), good.subarray(0, good.length - 30));
    await expect(patchImage(p('cr-s0'), [ds[0]!, createReadStream(p('cr-d2cut')), ds[2]!], p('cr-out'))).rejects.toMatchObject({ code: 'ERR_DELTA_TRUNCATED', deltaIndex: 1 });
    expect(existsSync(p('cr-out'))).toBe(false);
    expect(temps()).toEqual([]);
  });

  it('deltas of different page sizes in one chain are still applied (one by one)', async () => {
    const imgs = chainImages(94, 2, 400);
    writeFileSync(p('mx-s0'), imgs[0]!);
    writeFileSync(p('mx-s1'), imgs[1]!);
    writeFileSync(p('mx-s2'), imgs[2]!);
    await diffImages(p('mx-s0'), p('mx-s1'), p('mx-d1'), { pageSize: 4096 });
    await diffImages(p('mx-s1'), p('mx-s2'), p('mx-d2'), { pageSize: 8192 });
    await patchImage(p('mx-s0'), [p('mx-d1'), p('mx-d2')], p('mx-out'));
    expect(same(readFileSync(p('mx-out')), imgs[2]!)).toBe(true);
  });
});
