/**
 * readQemuMigration into a FilePageStore writes PAGE records straight from the
 * input's chunks: chunks a caller reuses (one buffer, refilled and scribbled
 * over as soon as the next chunk is asked for) must rebuild QEMU's own RAM.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FilePageStore, readQemuMigration } from '../lib/index.js';
import { gunzipFile } from './helpers/fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xbzrle-mig-reuse-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `bytes` in `size`-byte chunks through one buffer, scribbled over when the next chunk is asked for. */
async function* reusing(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const buf = new Uint8Array(size);
  for (let at = 0; at < bytes.length; at += size) {
    const n = Math.min(size, bytes.length - at);
    buf.set(bytes.subarray(at, at + n));
    yield buf.subarray(0, n);
    buf.fill(0xa5);
  }
}

describe('readQemuMigration into files from chunks the caller reuses', () => {
  for (const [version, name, sizes] of [
    ['qemu-7.2', 'mixed-c8m', [4099]],
    ['qemu-10.0', 'edge-c32m', [1 << 20]],
  ] as const) {
    it(`${version} ${name}: pc.ram is the RAM QEMU rebuilt, for chunk sizes cutting records anywhere`, async () => {
      const fixtures = join(__dirname, 'fixtures', version);
      const mig = gunzipFile(join(fixtures, `${name}.mig.gz`));
      const truth = gunzipFile(join(fixtures, `${name}.pc.ram.gz`));
      for (const size of sizes) {
        const out = join(dir, String(size));
        const store = new FilePageStore({ dir: out, cacheSize: 1 << 20 });
        const info = await readQemuMigration(reusing(mig, size), { store });
        expect(info.ramComplete).toBe(true);
        const ram = await readFile(join(out, 'pc.ram.bin'));
        expect(ram.equals(truth), `chunks of ${size}`).toBe(true);
      }
    });
  }
});
