import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patchImage, verifyDelta } from '../lib/delta/index.js';
import { FRAME_HEADER_SIZE, HEADER_SIZE } from '../lib/delta/format.js';
import { XbzrleError } from '../lib/errors.js';
import { applyInMemory, encodeInMemory, makePair, rng } from './delta-images.js';
import { readU32 } from '../lib/format/bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-bad-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let oldImg: Uint8Array;
let delta: Uint8Array;
/** Offsets where frames (and the trailer) start. */
const bounds: number[] = [];

beforeAll(async () => {
  const p = makePair(11, 128, 4096);
  oldImg = p.oldImg;
  ({ delta } = await encodeInMemory(p.oldImg, p.newImg, { frameSize: 4096 }));
  let at = HEADER_SIZE;
  while (delta[at] === 1) {
    bounds.push(at);
    at += FRAME_HEADER_SIZE + readU32(delta, at + 8);
  }
  bounds.push(at); // trailer
  expect(at + 48).toBe(delta.length);
  expect(bounds.length).toBeGreaterThan(5);
});

async function refused(d: Uint8Array): Promise<XbzrleError> {
  try {
    await applyInMemory(oldImg, d);
  } catch (err) {
    expect(err).toBeInstanceOf(XbzrleError);
    return err as XbzrleError;
  }
  throw new Error('the damaged delta was applied');
}

describe('a damaged delta is always refused', () => {
  it('a flip at every frame boundary (±2 bytes) and in every header and trailer byte', async () => {
    const spots = new Set<number>();
    for (let i = 0; i < HEADER_SIZE; i++) spots.add(i);
    for (let i = delta.length - 48; i < delta.length; i++) spots.add(i);
    for (const b of bounds) for (let d = -2; d <= FRAME_HEADER_SIZE + 1; d++) spots.add(b + d);
    for (const at of spots) {
      const d = delta.slice();
      d[at] = d[at]! ^ 0x01;
      const err = await refused(d);
      expect(['ERR_DELTA_CORRUPT', 'ERR_DELTA_FORMAT', 'ERR_DELTA_TRUNCATED']).toContain(err.code);
    }
  });

  it('the frame reported is the one damaged, with its byte offset', async () => {
    for (let f = 0; f < bounds.length - 1; f++) {
      const d = delta.slice();
      const at = bounds[f]! + FRAME_HEADER_SIZE + 5;
      d[at] = d[at]! ^ 0x80;
      const err = await refused(d);
      expect(err.code).toBe('ERR_DELTA_CORRUPT');
      expect(err.message).toContain(`frame ${f} at byte ${bounds[f]}`);
      expect(err.offset).toBe(bounds[f]);
    }
  });

  it('random single-byte changes anywhere (300 of them)', async () => {
    const r = rng(5);
    for (let k = 0; k < 300; k++) {
      const d = delta.slice();
      const at = Math.floor(r() * d.length);
      d[at] = d[at]! ^ (1 + Math.floor(r() * 255));
      await refused(d);
    }
  });

  it('truncation at every frame boundary and at random lengths is ERR_DELTA_TRUNCATED', async () => {
    const r = rng(9);
    const cuts = [...bounds, ...bounds.map((b) => b + 7), 0, 5, 8, HEADER_SIZE - 1, delta.length - 1, delta.length - 47];
    for (let k = 0; k < 40; k++) cuts.push(Math.floor(r() * delta.length));
    for (const n of cuts) {
      const err = await refused(delta.subarray(0, n));
      expect(err.code).toBe('ERR_DELTA_TRUNCATED');
      expect(err.message).toMatch(/truncated at byte \d+/);
    }
  });

  it('extra bytes after the trailer are refused', async () => {
    const d = new Uint8Array(delta.length + 1);
    d.set(delta);
    expect((await refused(d)).code).toBe('ERR_DELTA_CORRUPT');
  });

  it('patchImage and verifyDelta refuse a damaged delta and patch writes nothing', async () => {
    const a = join(dir, 'old');
    writeFileSync(a, oldImg);
    const r = rng(77);
    for (let k = 0; k < 12; k++) {
      const d = delta.slice();
      const at = k < 4 ? bounds[k]! : Math.floor(r() * d.length);
      d[at] = d[at]! ^ 0x10;
      const dp = join(dir, `d${k}`);
      writeFileSync(dp, d);
      const out = join(dir, `new${k}`);
      await expect(patchImage(a, dp, out)).rejects.toBeInstanceOf(XbzrleError);
      expect(existsSync(out)).toBe(false);
      await expect(verifyDelta(dp)).rejects.toBeInstanceOf(XbzrleError);
    }
    // an existing output stays as it was
    const out = join(dir, 'kept');
    writeFileSync(out, 'keep me');
    const bad = delta.slice();
    bad[bounds[1]! + 40] = bad[bounds[1]! + 40]! ^ 1;
    writeFileSync(join(dir, 'bad'), bad);
    await expect(patchImage(a, join(dir, 'bad'), out, { force: true })).rejects.toMatchObject({ code: 'ERR_DELTA_CORRUPT' });
    expect(readdirSync(dir).filter((f) => f.includes('xbzrle-tmp'))).toEqual([]);
    expect(Buffer.from(await import('node:fs').then((m) => m.readFileSync(out))).toString()).toBe('keep me');
  });
});
