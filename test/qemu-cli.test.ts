/**
 * The CLI on QEMU 8–10 files (issue 16 part 5, in-process through `runMain`): version-exact `stat`,
 * mapped-ram `stat` and `extract` (copy path), multifd main channels,
 * `--target FILE` on `stat`, `extract` and `decode`.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordWriter } from '../lib/index.js';
import { concat, sameBytes } from './helpers/bytes.js';
import { runMain } from './helpers/cli.js';
import { gunzipFile } from './helpers/fixtures.js';

const DIR = fileURLToPath(new URL('./fixtures/qemu-10.0/', import.meta.url));
const fixture = (name: string): Buffer => gunzipFile(DIR + name);

let root = '';
let mappedRam = '';
let edge = '';
let multifd = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'xbzrle-qcli-'));
  mappedRam = join(root, 'mappedram-sparse.mig');
  writeFileSync(mappedRam, fixture('mappedram-sparse.mig.gz'));
  edge = join(root, 'edge-c32m.mig');
  writeFileSync(edge, fixture('edge-c32m.mig.gz'));
  multifd = join(root, 'multifd-sparse.mig');
  writeFileSync(multifd, fixture('multifd-sparse.mig.gz'));
});
afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function json(args: string[]): Promise<any> {
  const r = await runMain([...args, '--json']);
  if (r.code !== 0) throw new Error(`${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8'));
}

describe('xbzrle stat on QEMU 10 files', () => {
  it('version-exact counters and the version guess (JSON and text)', async () => {
    const q = JSON.parse(readFileSync(DIR + 'edge-c32m.query.json', 'utf8'))['query-migrate'].ram;
    const st = await json(['stat', edge]);
    expect(st.qemuVersion).toMatchObject({ text: '10.0', from: 'machine-type' });
    for (const k of ['normal', 'duplicate', 'normal-bytes', 'transferred', 'precopy-bytes', 'downtime-bytes']) expect(st.ram[k], k).toBe(q[k]);
    expect('skipped' in st.ram).toBe(false);
    expect(st.ramBytes).toBe(q['precopy-bytes'] + q['downtime-bytes']);
    const text = (await runMain(['stat', edge])).stdout.toString('utf8');
    expect(text).toMatch(/qemu\s+10\.0 \(guessed from the machine type pc-i440fx-10\.0\)/);
    expect(text).toMatch(/bytes\s+9364483 in RAM records/);
    expect(text).toMatch(/transferred 9480882, precopy-bytes 8313634, downtime-bytes 1050849/);
  });

  it('a mapped-ram file: pages present per block and the layout', async () => {
    const st = await json(['stat', mappedRam]);
    expect(st.mappedRam[0]).toMatchObject({ id: 'pc.ram', pages: 8192, present: 4145, bitmapOffset: 0x8e, pagesOffset: 0x100000 });
    const text = (await runMain(['stat', mappedRam])).stdout.toString('utf8');
    expect(text).toMatch(/pc\.ram\s+32\.0 MiB\s+4145\/8192 pages\s+bitmap at 0x8e, pages at 0x100000/);
    expect(text).toMatch(/mapped-ram\s+4223 of 12434 pages in the file/);
  });

  it('a multifd main channel: said for what it is, MULTIFD_FLUSH counted', async () => {
    const r = await runMain(['stat', multifd]);
    expect(r.code).toBe(0);
    const text = r.stdout.toString('utf8');
    expect(text).toMatch(/\(no pages: a multifd main channel\)/);
    expect(text).toMatch(/multifd\s+a multifd main channel: pages travel in the other multifd channels/);
    expect(text).toMatch(/MULTIFD_FLUSH 13/);
    const e = await runMain(['extract', multifd, '-o', join(root, 'mf')]);
    expect(e.code).toBe(1);
  });
});

describe('xbzrle extract of a mapped-ram file', () => {
  it('by name (the copy path) and through gzip (the stream path): pc.ram exact, absent pages holes', async () => {
    const truth = fixture('mappedram-sparse.pc.ram.gz');
    const out = join(root, 'mr');
    const r = await runMain(['extract', mappedRam, '-o', out, '-q']);
    expect(r.code, r.stderr.toString()).toBe(0);
    expect(sameBytes(readFileSync(join(out, 'pc.ram.bin')), truth)).toBe(true);
    const st = statSync(join(out, 'pc.ram.bin'));
    expect(st.size).toBe(32 << 20);
    expect(st.blocks * 512).toBeLessThan(24 << 20); // 4145 of 8192 pages written
    expect(statSync(join(out, 'pc.rom.bin')).size).toBe(128 << 10);
    const gz = join(root, 'mr.mig.gz');
    writeFileSync(gz, readFileSync(DIR + 'mappedram-sparse.mig.gz'));
    const out2 = join(root, 'mr2');
    expect((await runMain(['extract', gz, '-o', out2, '-q'])).code).toBe(0);
    expect(sameBytes(readFileSync(join(out2, 'pc.ram.bin')), truth)).toBe(true);
  });
});

describe('--target FILE', () => {
  const target = (name: string, blocks: object): string => {
    const p = join(root, name);
    writeFileSync(p, JSON.stringify(blocks));
    return p;
  };

  it('stat and extract: refused as QEMU would, one line naming the file and QEMU’s message; a migration file as the target', async () => {
    const small = target('small.json', [{ id: 'pc.ram', length: 0x2000000 }]);
    const r = await runMain(['stat', edge, '--target', small]);
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toMatch(/edge-c32m\.mig: MEM_SIZE list at byte \d+, entry at byte \d+: Unknown ramblock "0000:00:02\.0\/vga\.vram", cannot accept migration/);
    expect((await runMain(['stat', edge, '--target', mappedRam])).code).toBe(0); // the same machine's block list
    const e = await runMain(['extract', mappedRam, '-o', join(root, 'refused'), '--target', small]);
    expect(e.code).toBe(1);
    expect(e.stderr.toString()).toMatch(/Unknown ramblock/);
  });

  it('decode: a MEM_SIZE that changes a fixed block is refused with Size mismatch', async () => {
    const chunks: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: 4096 }, (c) => chunks.push(c));
    w.memSize([{ id: 'ram', length: 8192 }]);
    w.page('ram', 0, new Uint8Array(4096).fill(1), 0);
    w.eos();
    w.flush();
    const input = join(root, 'd.xs');
    writeFileSync(input, concat(chunks));
    const bad = await runMain(['decode', input, '-o', join(root, 'd.bin'), '--target', target('fixed.json', [{ id: 'ram', length: 4096 }])]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.toString()).toMatch(/Size mismatch: ram: 0x2000 != 0x1000/);
    const ok = await runMain(['decode', input, '-o', join(root, 'd.bin'), '--target', target('ok.json', [{ id: 'ram', length: 8192 }])]);
    expect(ok.code, ok.stderr.toString()).toBe(0);
  });
});
