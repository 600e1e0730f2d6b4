/**
 * readQemuMigration into a FilePageStore writes PAGE records straight from the
 * input's chunks: chunks a caller reuses (one buffer, refilled and scribbled
 * over as soon as the next chunk is asked for) must rebuild QEMU's own RAM.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilePageStore, readQemuMigration } from '../lib/index.js';
import { gunzipFile } from './helpers/fixtures.js';
import { throughOneBuffer } from './helpers/streams.js';
import { tempDirEach } from './helpers/temp-dir.js';

let dir = '';
tempDirEach('xbzrle-mig-reuse-', (d) => (dir = d));

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
        const info = await readQemuMigration(throughOneBuffer(mig, size), { store });
        expect(info.ramComplete).toBe(true);
        const ram = await readFile(join(out, 'pc.ram.bin'));
        expect(ram.equals(truth), `chunks of ${size}`).toBe(true);
      }
    });
  }
});
