/**
 * readQemuMigration into a FilePageStore with threads,
 * the worker pool starting mid-file (parallelAfter): same image and same error as one thread.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilePageStore, readQemuMigration, XbzrleError } from '../lib/index.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { getKernelPool } from '../lib/codec/wasm/pool.js';
import { rng } from './helpers/bytes.js';
import { buildRecordFile } from './helpers/qemu-file.js';
import { buildRecords } from './helpers/streams.js';
import { tempDirEach } from './helpers/temp-dir.js';

const PS = 4096;
const PAGES = 64;
const poolAvailable = getKernelPool(getEngine(), 2) !== null;
let dir = '';
tempDirEach('xbzrle-borrow-', (d) => (dir = d));

function file(seed: number, bad: boolean): Buffer {
  const r = rng(seed);
  const start = buildRecords((w) => {
    w.memSize([{ id: 'pc.ram', length: PAGES * PS }]);
    for (let p = 0; p < PAGES; p++) w.page('pc.ram', p * PS, new Uint8Array(PS).fill(p + 1), 0);
    w.eos();
  });
  const parts: Uint8Array[] = [];
  for (let k = 0; k < 6; k++) {
    parts.push(
      buildRecords((w) => {
        for (let i = 0; i < 40; i++) {
          const p = Math.floor(r() * PAGES);
          const kind = Math.floor(r() * 4);
          if (kind === 0) w.page('pc.ram', p * PS, new Uint8Array(PS).fill(Math.floor(r() * 256)), 0);
          else if (kind === 1) w.zero('pc.ram', p * PS, 0);
          else {
            const n = 1 + Math.floor(r() * 2000);
            const d = new Uint8Array(3 + n);
            d.set([0x00, 0x80 | (n & 0x7f), n >>> 7]);
            d.fill(Math.floor(r() * 256), 3);
            w.xbzrle('pc.ram', p * PS, d, 0, d.length);
          }
          if (bad && k === 5 && i === 20) w.xbzrle('pc.ram', 0, new Uint8Array([0x80, 0x40, 0x01, 0x00]), 0, 4);
        }
        w.eos();
      }),
    );
  }
  return buildRecordFile('pc-i440fx-7.2', start, parts, buildRecords((w) => w.eos()));
}

async function run(bytes: Uint8Array, threads: number): Promise<{ err: string | null; image: Buffer | null }> {
  const path = join(dir, `img-${threads}`);
  const store = new FilePageStore({ path: () => path, cacheSize: 16 * PS, parallelAfter: 30000 });
  const err = await readQemuMigration(bytes, { store, threads }).then(
    () => null,
    (e: unknown) => e,
  );
  if (err !== null) {
    await store.close();
    expect(err).toBeInstanceOf(XbzrleError);
    return { err: `${(err as XbzrleError).code}@${(err as XbzrleError).offset}`, image: null };
  }
  return { err: null, image: await readFile(path) };
}

describe.skipIf(!poolAvailable)('readQemuMigration into files, workers from mid-file', () => {
  it('same image and same error as one thread', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      for (const bad of [false, true]) {
        const f = file(seed, bad);
        const one = await run(f, 1);
        const two = await run(f, 2);
        expect(two.err).toBe(one.err);
        if (one.image !== null) expect(two.image!.equals(one.image)).toBe(true);
        if (bad) expect(one.err).toMatch(/^ERR_XBZRLE_CORRUPT@/);
      }
    }
  });
});
