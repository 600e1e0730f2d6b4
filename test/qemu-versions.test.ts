// Version-exact statistics (issue 16 part 1): readQemuMigration reports the counters as the
// query-migrate of the QEMU that wrote the stream, guessed from the machine type.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemoryPageStore, readQemuMigration } from '../lib/index.js';
import { guessQemuVersion, machineTypeVersion, parseQemuVersion } from '../lib/qemu/version.js';
import { sameBytes, split } from './helpers/bytes.js';
import { gunzipFile } from './helpers/fixtures.js';

const LOCAL = fileURLToPath(new URL('./fixtures/', import.meta.url));
const SHARED = fileURLToPath(new URL('../../shared/fixtures/', import.meta.url));

/** A capture from test/fixtures, or from the shared folder when only it has it (skipped when neither does). */
function capture(version: string, name: string): { mig: Buffer; ram: Buffer | null; query: any } | null {
  for (const dir of [LOCAL, SHARED]) {
    const base = join(dir, `qemu-${version}`, name);
    if (!existsSync(base + '.mig.gz')) continue;
    return {
      mig: gunzipFile(base + '.mig.gz'),
      ram: existsSync(base + '.pc.ram.gz') ? gunzipFile(base + '.pc.ram.gz') : null,
      query: JSON.parse(readFileSync(base + '.query.json', 'utf8')),
    };
  }
  return null;
}

const XBZRLE_CAPTURES: [string, string][] = [
  ['10.0', 'edge-c32m'],
  ['10.0', 'sparse-c32m'],
  ['10.0', 'mixed-c8m'],
  ['7.2', 'sparse-c32m'],
  ['7.2', 'mixed-c8m'],
];

describe('version-exact query-migrate counters', () => {
  it.each(XBZRLE_CAPTURES)('QEMU %s %s: normal, duplicate, normal-bytes, transferred, precopy + downtime equal query.json; pc.ram exact', async (version, name) => {
    const cap = capture(version, name);
    if (cap === null) return; // neither copy present
    const store = new MemoryPageStore();
    const chunks = split(cap.mig, 'random', 7, 1 << 20);
    const info = await readQemuMigration(
      (async function* () {
        yield* chunks;
      })(),
      { store },
    );
    const q = cap.query['query-migrate'].ram;
    const json = info.stats.toQueryMigrate();
    expect(info.qemuVersion).toMatchObject({ text: version, from: 'machine-type', evidence: `machine type pc-i440fx-${version}` });
    expect(json.ram.normal).toBe(q.normal);
    expect(json.ram.duplicate).toBe(q.duplicate);
    expect(json.ram['normal-bytes']).toBe(q['normal-bytes']);
    expect(json.ram.transferred).toBe(q.transferred);
    expect(json.ram['precopy-bytes']).toBe(q['precopy-bytes']);
    expect(json.ram['downtime-bytes']).toBe(q['downtime-bytes']);
    expect(json.ram['postcopy-bytes']).toBe(q['postcopy-bytes']);
    expect(json.ram['precopy-bytes']! + json.ram['downtime-bytes']!).toBe(q['precopy-bytes'] + q['downtime-bytes']);
    // skipped: in 7.2's query-migrate, gone from 9.1 (toJSON keeps it for compatibility).
    expect('skipped' in json.ram).toBe('skipped' in q);
    expect(info.stats.toJSON().ram.skipped).toBe(0);
    expect(info.ramComplete).toBe(true);
    expect(info.multifdMainChannel).toBeNull();
    if (cap.ram !== null) {
      expect(sameBytes(store.read('pc.ram'), cap.ram)).toBe(true);
      expect(createHash('sha256').update(store.read('pc.ram')).digest('hex')).toBe(cap.query['pc.ram-sha256']);
    }
  });

  it('QEMU 10 transferred is the whole file: the same from a path (measured) and from a stream (read to its end)', async () => {
    const cap = capture('10.0', 'edge-c32m')!;
    const dir = await mkdtemp(join(tmpdir(), 'xbzrle-qv-'));
    try {
      const path = join(dir, 'edge.mig');
      await writeFile(path, cap.mig);
      const fromPath = await readQemuMigration(path, { store: null });
      const fromStream = await readQemuMigration(
        (async function* () {
          yield* split(cap.mig, 'random', 3, 65536);
        })(),
        { store: null },
      );
      expect(fromPath.stats.transferred).toBe(cap.mig.length);
      expect(fromStream.stats.transferred).toBe(cap.mig.length);
      expect(fromPath.stats.transferred).toBe(cap.query['query-migrate'].ram.transferred);
      expect(fromPath.commands).toEqual({ 11: 1 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the qemuVersion option overrides the guess (and with it the counters shape)', async () => {
    const cap = capture('7.2', 'sparse-c32m')!;
    const info = await readQemuMigration(cap.mig, { store: null, qemuVersion: '10.0.2' });
    expect(info.qemuVersion).toMatchObject({ major: 10, minor: 0, text: '10.0', from: 'option' });
    expect(info.stats.transferred).toBe(cap.mig.length);
    expect('skipped' in info.stats.toQueryMigrate().ram).toBe(false);
    await expect(readQemuMigration(cap.mig, { qemuVersion: 'ten' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('guessing the QEMU version', () => {
  it('reads versioned machine types of every target, and nothing else', () => {
    expect(machineTypeVersion('pc-i440fx-10.0')).toEqual({ major: 10, minor: 0 });
    expect(machineTypeVersion('pc-q35-9.2')).toEqual({ major: 9, minor: 2 });
    expect(machineTypeVersion('virt-8.2')).toEqual({ major: 8, minor: 2 });
    expect(machineTypeVersion('pseries-7.1')).toEqual({ major: 7, minor: 1 });
    expect(machineTypeVersion('s390-ccw-virtio-9.0')).toEqual({ major: 9, minor: 0 });
    expect(machineTypeVersion('pc-q35-rhel9.4.0')).toBeNull(); // a vendor machine type: no upstream version
    expect(machineTypeVersion('microvm')).toBeNull();
    expect(machineTypeVersion(null)).toBeNull();
  });

  it('raises the machine type’s version to what the stream’s features need, and says why', () => {
    const none = { switchoverStart: false, mappedRam: false, multifdFlush: false };
    expect(guessQemuVersion('pc-i440fx-8.0', { ...none, mappedRam: true })).toMatchObject({
      text: '9.0',
      from: 'stream',
      evidence: 'machine type pc-i440fx-8.0, but the mapped-ram capability needs QEMU 9.0 or later',
    });
    expect(guessQemuVersion('microvm', { ...none, switchoverStart: true })).toMatchObject({ text: '10.0', from: 'stream' });
    expect(guessQemuVersion('pc-i440fx-10.0', { ...none, multifdFlush: true })).toMatchObject({ text: '10.0', from: 'machine-type' });
    expect(guessQemuVersion('isapc', none)).toBeNull();
    expect(parseQemuVersion('9.2.1')).toMatchObject({ major: 9, minor: 2, from: 'option' });
  });
});

describe('the counters’ shape at each version boundary', () => {
  const PS = 4096;
  const rec = (hex: string): Buffer => Buffer.from(hex.replace(/ /g, ''), 'hex');
  // START: MEM_SIZE ram 8 KiB + EOS; PART: PAGE + EOS; END: ZERO + EOS.
  const memSize = rec('0000000000002004 03 72616d 0000000000002000 0000000000000010');
  const part = Buffer.concat([rec('0000000000000008 03 72616d'), Buffer.alloc(PS, 7), rec('0000000000000010')]);
  const end = rec('0000000000001022 00 0000000000000010');
  const ramBytes = part.length - 8 + 8 + (end.length - 8); // PAGE record + PART's EOS + ZERO record

  it.each([
    ['6.2', false, false, true],
    ['7.0', true, false, true],
    ['8.1', true, false, true],
    ['8.2', true, true, true],
    ['9.0', true, true, true],
    ['9.1', true, true, false],
    ['10.1', true, true, false],
  ] as const)('pc-q35-%s: split bytes %s, whole-stream transferred %s, skipped %s', async (v, split, whole, skipped) => {
    const { buildRecordFile } = await import('./helpers/qemu-file.js');
    const file = buildRecordFile(`pc-q35-${v}`, memSize, [part], end);
    const info = await readQemuMigration(file, { store: null });
    const ram = info.stats.toQueryMigrate().ram;
    expect(info.qemuVersion?.text).toBe(v);
    expect(ram.transferred).toBe(whole ? file.length : ramBytes);
    expect('precopy-bytes' in ram).toBe(split);
    if (split) {
      expect(ram['precopy-bytes']).toBe(part.length);
      expect(ram['downtime-bytes']).toBe(end.length - 8);
      expect(ram['postcopy-bytes']).toBe(0);
    }
    expect('skipped' in ram).toBe(skipped);
  });
});
