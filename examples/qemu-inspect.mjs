#!/usr/bin/env node
// Example: inspect a real QEMU migration file.
//
// readQemuMigration() reads a stream written by QEMU's `migrate "exec:cat > FILE"`:
// the header, the configuration section (machine type), the `ram` START / PART /
// END sections with their RAM records (XBZRLE pages decoded), and stops cleanly
// at the first device-state section, which cannot be parsed without QEMU's
// device descriptions. This prints the machine type, the RAM blocks (with the
// SHA-256 of each rebuilt block), the sections, where reading stopped, and the
// statistics in QEMU's query-migrate shape (stats.toJSON()).
//
// The input may be gzip-compressed: it is gunzipped with node:zlib on the way in
// (readQemuMigration takes a path, bytes, or any Readable / async iterable).
// When a NAME.query.json sits next to NAME.mig[.gz] (as for the bundled
// captures), the result is checked against what QEMU itself reported there.
//
// Run:   npm run build && node examples/qemu-inspect.mjs [FILE.mig[.gz]] [--count-only]
//        default FILE: test/fixtures/qemu-7.2/sparse-c32m.mig.gz (a QEMU 7.2 capture)
//        --count-only: validate and count without keeping pages (for big guests)
// Exit:  0 on success, 1 when a check against NAME.query.json fails (or the file is bad).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { exampleOptions } from './args.mjs';
import { createGunzip } from 'node:zlib';
import { MemoryPageStore, readQemuMigration } from 'xbzrle';

const { values, positionals } = exampleOptions('usage: node examples/qemu-inspect.mjs [MIGFILE] [--count-only]', { 'count-only': { type: 'boolean', default: false } }, true);
const file = positionals[0] ?? fileURLToPath(new URL('../test/fixtures/qemu-7.2/sparse-c32m.mig.gz', import.meta.url));
const gzipped = file.endsWith('.gz');

// A Readable of the migration stream itself: gunzipped when the file is .gz.
const input = gzipped ? createReadStream(file).pipe(createGunzip()) : createReadStream(file, { highWaterMark: 1 << 20 });
const store = values['count-only'] ? null : new MemoryPageStore();
const info = await readQemuMigration(input, { store });

/** @param {number} n */
const size = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(2)} MiB` : `${(n / 1024).toFixed(0)} KiB`);
const stop = info.stoppedAt;
console.log(`qemu-inspect: ${file}${gzipped ? ' (gunzipped)' : ''}`);
console.log(`  machine      ${info.machine ?? '(no configuration section)'}   stream version ${info.version}, page size ${info.pageSize}`);
console.log(`  capabilities ${info.capabilities.join(', ') || '(none)'}`);
console.log(`  blocks       ${info.blocks.length}`);
/** @type {Record<string, string>} */
const hashes = {};
for (const b of info.blocks) {
  if (store) hashes[b.id] = createHash('sha256').update(store.read(b.id)).digest('hex');
  console.log(`    ${b.id.padEnd(26)} ${size(b.length).padStart(10)}${store ? `  sha256 ${hashes[b.id].slice(0, 16)}…` : ''}`);
}
const { start, part, end } = info.sections;
console.log(`  ram sections START ${start}, PART ${part}, END ${end} (${info.ramComplete ? 'all RAM read' : 'RAM incomplete'})`);
console.log(
  `  stopped at   byte ${stop.offset}: ${
    stop.reason === 'section'
      ? `${stop.type} section${stop.idstr ? ` "${stop.idstr}"` : ''} (id ${stop.sectionId}) — device state, not RAM`
      : stop.reason === 'eof'
        ? 'the EOF marker'
        : 'the end of the input'
  }`,
);
const stats = info.stats.toJSON();
console.log(`  stats.toJSON()\n${JSON.stringify(stats, null, 2).replace(/^/gm, '    ')}`);

// Cross-check with QEMU's own numbers, when they are next to the file.
const sidecar = file.replace(/\.gz$/, '').replace(/\.mig$/, '') + '.query.json';
let failed = false;
if (existsSync(sidecar)) {
  const q = JSON.parse(readFileSync(sidecar, 'utf8'));
  const qm = q['query-migrate'].ram;
  const checks = [
    ['ram.normal', stats.ram.normal, qm.normal],
    ['ram.duplicate', stats.ram.duplicate, qm.duplicate],
    ['ram.transferred', stats.ram.transferred, qm.transferred],
  ];
  if (store && q['pc.ram-sha256']) checks.push(['pc.ram sha256', hashes['pc.ram'], q['pc.ram-sha256']]);
  for (const [what, ours, qemus] of checks) {
    const ok = ours === qemus;
    if (!ok) failed = true;
    console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what} = ${ours}${ok ? ', as QEMU reported' : `, QEMU reported ${qemus}`}`);
  }
  console.log(failed ? 'FAILED: differs from QEMU' : `verified against ${sidecar.split('/').pop()}: OK`);
}
process.exitCode = failed ? 1 : 0;
