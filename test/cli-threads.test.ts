import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { runMain, scratchFolders } from './helpers/cli.js';
import { gunzipFile } from './helpers/fixtures.js';
import { setPoolStartMs } from '../lib/core/encoder.js';

// Encoders here start their worker pool with their second group of pages: by default it waits for
// ~50 ms of pages sent (encoder-pool-starts-with-work), more than these inputs give.
beforeAll(() => setPoolStartMs(0));
afterAll(() => setPoolStartMs(undefined));

const PS = 4096;
const dirs = scratchFolders('xbzrle-cli-threads-');
const poolAvailable = getKernelPool(getEngine(), 2) !== null;

/** Two images of `pages` pages: random, then with small edits, zero pages and rewrites. */
function images(dir: string, pages: number): [string, string] {
  const rand = rng(11);
  const a = randomBytes(pages * PS, rand);
  const b = a.slice();
  for (let p = 0; p < pages; p++) {
    const k = Math.floor(rand() * 6);
    if (k === 0) b.fill(0, p * PS, (p + 1) * PS);
    else if (k === 1) b.set(randomBytes(PS, rand), p * PS);
    else if (k < 4) {
      const at = p * PS + Math.floor(rand() * PS);
      b[at] = b[at]! ^ 0x55;
    }
  }
  const old = join(dir, 'old.img');
  const neu = join(dir, 'new.img');
  writeFileSync(old, a);
  writeFileSync(neu, b);
  return [old, neu];
}

describe('--threads', () => {
  it.skipIf(!poolAvailable)('encode writes the same stream with 1, 2 and 3 threads, and it decodes back', async () => {
    const dir = dirs.fresh('same');
    const [old, neu] = images(dir, 3000);
    const outs: Buffer[] = [];
    for (const n of ['1', '2', '3']) {
      const out = join(dir, `s${n}.xs`);
      const r = await runMain(['encode', old, neu, '-o', out, '--threads', n, '--cache-size', '16M']);
      expect(r.stderr).toContain('2 rounds');
      expect(r.code).toBe(0);
      outs.push(readFileSync(out));
    }
    expect(outs[1]!.equals(outs[0]!)).toBe(true);
    expect(outs[2]!.equals(outs[0]!)).toBe(true);
    const img = join(dir, 'back.img');
    expect((await runMain(['decode', join(dir, 's2.xs'), '-o', img, '-q'])).code).toBe(0);
    expect(readFileSync(img).equals(readFileSync(neu))).toBe(true);
  });

  it.skipIf(!poolAvailable)('decode writes the same image with 1, 2 and 3 threads, whatever its cache, zero pages left as holes', async () => {
    const dir = dirs.fresh('decode');
    const [old, neu] = images(dir, 3000);
    const stream = join(dir, 's.xs');
    expect((await runMain(['encode', old, neu, '-o', stream, '--threads', '1', '-q'])).code).toBe(0);
    const want = readFileSync(neu);
    // A small cache (pages written out and read back all along) on 1 to 3 threads, larger ones on 2.
    const runs = [['64K', '1'], ['64K', '2'], ['64K', '3'], ['1M', '2'], ['64M', '2']] as const;
    for (const [cache, n] of runs) {
      const img = join(dir, `d${n}-${cache}.img`);
      const r = await runMain(['decode', stream, '-o', img, '--threads', n, '--cache-size', cache]);
      expect(r.stderr).toContain('rebuilt from');
      expect(r.code).toBe(0);
      expect(readFileSync(img).equals(want)).toBe(true);
    }
    // extract of the same stream file (read into reused buffers, PAGE records written from them).
    for (const n of ['1', '2']) {
      const out = join(dir, `x${n}`);
      const r = await runMain(['extract', stream, '-o', out, '--threads', n, '--cache-size', '64K', '-q']);
      expect(r.code).toBe(0);
      expect(readFileSync(join(out, 'ram.bin')).equals(want)).toBe(true);
    }
    // A sixth of NEW's pages are zero: sent once, as ZERO records, they stay holes.
    const once = join(dir, 'once.xs');
    expect((await runMain(['encode', neu, '-o', once, '-q'])).code).toBe(0);
    const img = join(dir, 'once.img');
    expect((await runMain(['decode', once, '-o', img, '--threads', '2', '-q'])).code).toBe(0);
    expect(readFileSync(img).equals(want)).toBe(true);
    const st = statSync(img);
    expect(st.blocks * 512).toBeLessThan(st.size * 0.95);
  });

  it.skipIf(!poolAvailable)('decode refuses a delta against a base with threads as with one', async () => {
    const dir = dirs.fresh('delta');
    const [old, neu] = images(dir, 600);
    const delta = join(dir, 'd.xs');
    expect((await runMain(['diff', old, neu, '-o', delta, '--format', 'qemu', '-q'])).code).toBe(0);
    const one = await runMain(['decode', delta, '-o', join(dir, 'x1.img'), '--threads', '1']);
    const two = await runMain(['decode', delta, '-o', join(dir, 'x2.img'), '--threads', '2']);
    expect(one.code).toBe(1);
    expect(one.stderr).toContain('a delta against a base image');
    expect(two.code).toBe(1);
    expect(two.stderr).toBe(one.stderr.replace('x1.img', 'x2.img'));
  });

  it.skipIf(!poolAvailable)('extract of a QEMU 10.0 capture writes the ground truth with 1 and 2 threads', async () => {
    const dir = dirs.fresh('extract');
    const fixtures = join(__dirname, 'fixtures', 'qemu-10.0');
    const mig = join(dir, 'edge.mig');
    writeFileSync(mig, gunzipFile(join(fixtures, 'edge-c32m.mig.gz')));
    const truth = gunzipFile(join(fixtures, 'edge-c32m.pc.ram.gz'));
    for (const n of ['1', '2']) {
      const out = join(dir, `x${n}`);
      const r = await runMain(['extract', mig, '-o', out, '--threads', n, '--cache-size', '1M', '-q']);
      expect(r.code).toBe(0);
      expect(readFileSync(join(out, 'pc.ram.bin')).equals(truth)).toBe(true);
    }
  });

  it('refuses a count that is not a whole number from 1 to 256', async () => {
    for (const bad of ['0', '1x', 'x', '1.5', '257']) {
      const r = await runMain(['encode', '/dev/null', '-o', '/dev/null', '--threads', bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('--threads must be a whole number from 1 to 256');
    }
  });

  it('is refused by commands that do not take it', async () => {
    const r = await runMain(['stat', '/dev/null', '--threads', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('option --threads does not apply to this command');
  });
});
