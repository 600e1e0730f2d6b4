// Decoding the bundled QEMU 7.2 captures into files: FilePageStore with its
// page cache (default 64 MiB), with a small cache (8 MiB), and with none
// (every page written and every XBZRLE base read through the file), next to
// MemoryPageStore. Checks every result against the RAM QEMU's loader rebuilt.
//
//   npm run bench:file [-- --reps n]     (after npm run build; best of n, default 3)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { scriptArgs } from './args.mjs';
import { loadPackage } from './lib/package.mjs';

const FIXTURES = fileURLToPath(new URL('../test/fixtures/qemu-7.2/', import.meta.url));
const NAMES = ['mixed-c8m', 'sparse-c32m'];
const { values, fail } = scriptArgs('bench/file-store.mjs', 'usage: node bench/file-store.mjs [--reps n]   (best of n runs, default 3)\n', {
  reps: { type: 'string', default: '3' },
});
const REPS = Number(values.reps);
if (!Number.isSafeInteger(REPS) || REPS < 1) fail('--reps must be a positive integer');
const { FilePageStore, MemoryPageStore, readQemuMigration } = await loadPackage().catch((err) => {
  process.stderr.write(`bench/file-store.mjs: ${err.message}\n`);
  process.exit(2);
});
/** @param {Uint8Array} b */
const sha = (b) => createHash('sha256').update(b).digest('hex');

/** @type {{ label: string, make: (dir: string) => { store: import('xbzrle').PageStore & { dispose?: () => void } } }[]} */
const configs = [
  { label: 'MemoryPageStore', make: () => ({ store: new MemoryPageStore() }) },
  { label: 'FilePageStore (64 MiB cache)', make: (dir) => ({ store: new FilePageStore({ dir }) }) },
  { label: 'FilePageStore (8 MiB cache)', make: (dir) => ({ store: new FilePageStore({ dir, cacheSize: 8 << 20 }) }) },
  { label: 'FilePageStore (no cache)', make: (dir) => ({ store: new FilePageStore({ dir, cacheSize: 0 }) }) },
];

const rows = [];
let failed = false;
for (const name of NAMES) {
  const mig = gunzipSync(readFileSync(join(FIXTURES, `${name}.mig.gz`)));
  const want = sha(gunzipSync(readFileSync(join(FIXTURES, `${name}.pc.ram.gz`))));
  for (const { label, make } of configs) {
    let best = Infinity;
    for (let r = 0; r < REPS; r++) {
      const dir = mkdtempSync(join(tmpdir(), 'xbzrle-bench-file-'));
      try {
        const { store } = make(dir);
        const t0 = performance.now();
        await readQemuMigration(mig, { store });
        await store.finish?.();
        best = Math.min(best, performance.now() - t0);
        const got = store instanceof MemoryPageStore ? sha(store.read('pc.ram')) : sha(readFileSync(join(dir, 'pc.ram.bin')));
        if (got !== want) {
          failed = true;
          console.log(`MISMATCH ${name} ${label}`);
        }
        store.dispose?.();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    rows.push({ name, label, ms: best, mbps: mig.length / best / 1e3 });
  }
}
console.log(`\n### Decoding the QEMU 7.2 captures (best of ${REPS}; MB/s of migration stream)\n`);
console.log('| capture | store | ms | MB/s |');
console.log('|---|---|--:|--:|');
for (const r of rows) console.log(`| ${r.name} | ${r.label} | ${r.ms.toFixed(0)} | ${r.mbps.toFixed(1)} |`);
if (failed) process.exit(1);
