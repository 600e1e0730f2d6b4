// mapped-ram files (issue 16 part 2): QEMU ≥ 9.0 `migrate file:` with the mapped-ram capability.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyMappedRamBlock, FilePageStore, MemoryPageStore, readQemuMigration, XbzrleError } from '../lib/index.js';
import { rng, sameBytes, split } from './helpers/bytes.js';
import { buildMappedRamFile, type MappedRamSpec } from './helpers/qemu-file.js';
import { gunzipFile } from './helpers/fixtures.js';

const DIR = fileURLToPath(new URL('./fixtures/qemu-10.0/', import.meta.url));
const mig = gunzipFile(DIR + 'mappedram-sparse.mig.gz');
const pcRam = gunzipFile(DIR + 'mappedram-sparse.pc.ram.gz');
const query = JSON.parse(readFileSync(DIR + 'mappedram-sparse.query.json', 'utf8'));

/** A non-seekable input: the bytes in chunks through an async generator. */
function pipe(bytes: Uint8Array, seed = 5): AsyncIterable<Uint8Array> {
  const chunks = split(bytes, 'random', seed, 1 << 20);
  return (async function* () {
    yield* chunks;
  })();
}

let tmp = '';
let path = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'xbzrle-mr-'));
  path = join(tmp, 'mappedram-sparse.mig');
  await writeFile(path, mig);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('mapped-ram: the real QEMU 10.0 file', () => {
  it.each(['path', 'pipe', 'bytes'] as const)('from a %s: rebuilds pc.ram exactly, reports the layout and the pages present', async (how) => {
    const store = new MemoryPageStore();
    const input = how === 'path' ? path : how === 'pipe' ? pipe(mig) : new Uint8Array(mig);
    const info = await readQemuMigration(input, { store });
    expect(createHash('sha256').update(store.read('pc.ram')).digest('hex')).toBe(query['pc.ram-sha256']);
    expect(sameBytes(store.read('pc.ram'), pcRam)).toBe(true);
    expect(info.capabilities).toEqual(['mapped-ram']);
    expect(info.qemuVersion).toMatchObject({ text: '10.0', from: 'machine-type' });
    expect(info.ramComplete).toBe(true);
    expect(info.sections).toEqual({ start: 1, part: 18, end: 1 });
    expect(info.mappedRam).not.toBeNull();
    const layout = info.mappedRam!;
    expect(layout.map((b) => b.id)).toEqual(['pc.ram', '0000:00:02.0/vga.vram', '/rom@etc/acpi/tables', 'pc.bios', 'pc.rom', '0000:00:02.0/vga.rom', '/rom@etc/table-loader', '/rom@etc/acpi/rsdp']);
    expect(layout[0]).toMatchObject({ id: 'pc.ram', length: 0x2000000, version: 1, pageSize: 4096, bitmapOffset: 0x8e, pagesOffset: 0x100000, pages: 8192, ignoredBits: 0 });
    expect(layout.reduce((n, b) => n + b.present, 0)).toBe(4223);
    expect(info.stats.normal).toBe(4223); // the pages in the file (QEMU counted every write: 25404)
    expect(info.stats.records.MEM_SIZE).toBe(1);
    expect(info.stats.transferred).toBe(mig.length);
    expect(info.blocks.map((b) => b.length)).toEqual(layout.map((b) => b.length));
    // Blocks with no page present read as zeros at their full length.
    for (const b of layout) expect(store.read(b.id).length).toBe(b.length);
  });

  it('validate-only (store: null) reads the bitmaps, not the pages', async () => {
    let read = 0;
    const info = await readQemuMigration(path, { store: null, onProgress: (n) => (read = n) });
    expect(info.mappedRam!.reduce((n, b) => n + b.present, 0)).toBe(4223);
    expect(read).toBeLessThan(16 << 20); // of the 58.8 MB file: sections, bitmaps and a read-ahead chunk at each seek
  });

  it('into a FilePageStore: pc.ram.bin is the truth and sparse', async () => {
    const out = join(tmp, 'fps');
    const store = new FilePageStore({ dir: out, fsync: false });
    await readQemuMigration(path, { store });
    const image = await readFile(join(out, 'pc.ram.bin'));
    expect(sameBytes(image, pcRam)).toBe(true);
    const st = statSync(join(out, '0000:00:02.0_vga.vram.bin'));
    expect(st.size).toBe(16 << 20);
  });

  it('copyMappedRamBlock copies the present runs at their offsets, holes elsewhere (the extract fast path)', async () => {
    const info = await readQemuMigration(path, { store: null });
    const input = await open(path, 'r');
    const outPath = join(tmp, 'pc.ram.copy');
    const output = await open(outPath, 'w+');
    try {
      const t0 = performance.now();
      const copied = await copyMappedRamBlock(input, info.mappedRam![0]!, output);
      const ms = performance.now() - t0;
      expect(copied).toBe(info.mappedRam![0]!.present * 4096);
      expect(ms).toBeLessThan(5000);
    } finally {
      await input.close();
      await output.close();
    }
    expect(sameBytes(await readFile(outPath), pcRam)).toBe(true);
  });
});

// ---- Synthetic files ----

const PS = 4096;
const spec = (over: Partial<MappedRamSpec> = {}): MappedRamSpec => ({
  id: 'ram',
  length: 10 * PS,
  present: new Map([
    [0, 1],
    [1, 2],
    [2, 3],
    [7, 9],
  ]),
  ...over,
});

async function fails(input: Uint8Array | AsyncIterable<Uint8Array>, code: string, opts = {}): Promise<XbzrleError> {
  const err = await readQemuMigration(input, { store: new MemoryPageStore(), ...opts }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(XbzrleError);
  expect((err as XbzrleError).code, (err as Error).message).toBe(code);
  return err as XbzrleError;
}

describe('mapped-ram: synthetic files and their edge cases', () => {
  it('two blocks, present runs and holes, in memory and through a pipe', async () => {
    const file = buildMappedRamFile([spec(), spec({ id: 'rom', length: 3 * PS, present: new Map([[2, 0xee]]) })]);
    for (const input of [new Uint8Array(file), pipe(file, 9)]) {
      const store = new MemoryPageStore();
      const info = await readQemuMigration(input, { store });
      const ram = store.read('ram');
      expect(ram.length).toBe(10 * PS);
      for (let i = 0; i < 10; i++) expect(ram[i * PS + 17], `page ${i}`).toBe(({ 0: 1, 1: 2, 2: 3, 7: 9 } as Record<number, number>)[i] ?? 0);
      expect(store.read('rom')[2 * PS]).toBe(0xee);
      expect(info.mappedRam!.map((b) => b.present)).toEqual([4, 1]);
      expect(info.qemuVersion?.text).toBe('10.0');
    }
  });

  it('bitmap bits past the block end are ignored, as QEMU ignores them, and counted', async () => {
    const file = buildMappedRamFile([spec({ length: 10 * PS, extraBits: [10, 63] })]);
    const store = new MemoryPageStore();
    const info = await readQemuMigration(new Uint8Array(file), { store });
    expect(info.mappedRam![0]).toMatchObject({ pages: 10, present: 4, ignoredBits: 2 });
    expect(store.read('ram').length).toBe(10 * PS);
    expect(store.blocks()).toEqual([{ id: 'ram', length: 10 * PS }]);
  });

  it('a header version above 1: ERR_QEMU_UNSUPPORTED at the header', async () => {
    const file = buildMappedRamFile([spec({ version: 2 })]);
    const err = await fails(new Uint8Array(file), 'ERR_QEMU_UNSUPPORTED');
    expect(err.message).toMatch(/mapped-ram header of block "ram" at byte \d+: version 2 is not supported/);
    expect(file.readUInt32BE(err.offset!)).toBe(2);
  });

  it('a header page size other than the stream’s: ERR_QEMU_CORRUPT at the field', async () => {
    const file = buildMappedRamFile([spec({ headerPageSize: 8192 })]);
    const err = await fails(new Uint8Array(file), 'ERR_QEMU_CORRUPT');
    expect(err.message).toMatch(/page size 8192, but the stream's page size is 4096/);
    expect(Number(file.readBigUInt64BE(err.offset!))).toBe(8192);
  });

  it('a present page past the end of the file: ERR_QEMU_TRUNCATED at that page (path, bytes, pipe, validate-only)', async () => {
    const file = buildMappedRamFile([spec()]);
    const pagesOffset = Math.ceil((file.indexOf(Buffer.from('ram')) + 3 + 8 + 28 + 8) / PS) * PS;
    const cut = file.subarray(0, pagesOffset + 5 * PS); // page 7 is gone
    for (const input of [new Uint8Array(cut), pipe(cut)]) {
      const err = await fails(input, 'ERR_QEMU_TRUNCATED');
      expect(err.message).toMatch(/page 7 of block "ram"/);
      expect(err.offset).toBe(pagesOffset + 7 * PS);
    }
    const p = join(tmp, 'cut.mig');
    await writeFile(p, cut);
    expect((await fails(p as never, 'ERR_QEMU_TRUNCATED', { store: null })).offset).toBe(pagesOffset + 7 * PS);
  });

  it('a bitmap past the end of the file: ERR_QEMU_TRUNCATED', async () => {
    const file = buildMappedRamFile([spec({ id: 'blk' })]);
    const headerAt = file.indexOf(Buffer.from('blk')) + 3 + 8;
    const cut = file.subarray(0, headerAt + 28 + 1);
    const err = await fails(new Uint8Array(cut), 'ERR_QEMU_TRUNCATED');
    expect(err.message).toMatch(/the bitmap of block "blk" \(8 bytes at byte \d+/);
    expect(err.offset).toBe(headerAt + 28 + 1);
  });

  it('a region behind the read position of a pipe: ERR_QEMU_UNSUPPORTED naming the way around it; the same file from bytes reads', async () => {
    const file = buildMappedRamFile([spec({ bitmapAfterPages: true })]);
    const err = await fails(pipe(file), 'ERR_QEMU_UNSUPPORTED');
    expect(err.message).toMatch(/cannot go back \(give readQemuMigration the file path, or the bytes\)/);
    const store = new MemoryPageStore();
    await readQemuMigration(new Uint8Array(file), { store });
    expect(store.read('ram')[7 * PS]).toBe(9);
  });

  it('under a target: a block the target lacks, a page past the target block’s end', async () => {
    const file = new Uint8Array(buildMappedRamFile([spec()]));
    const unknown = await fails(file, 'ERR_RAM_UNKNOWN_BLOCK', { target: [{ id: 'pc.ram', length: 10 * PS }] });
    expect(unknown.message).toMatch(/Unknown ramblock "ram", cannot accept migration/);
    const past = await fails(file, 'ERR_RAM_OFFSET', { target: [{ id: 'ram', length: 4 * PS }] });
    expect(past.message).toMatch(/page outside of ramblock ram range/);
    await readQemuMigration(file, { target: [{ id: 'ram', length: 10 * PS }] });
  });
});

describe('mapped-ram: mutated files fail only with XbzrleError, promptly', () => {
  it('400 mutations of the MEM_SIZE list, headers and bitmaps (bytes and pipe)', async () => {
    const file = buildMappedRamFile([spec(), spec({ id: 'rom', length: 3 * PS, present: new Map([[2, 0xee]]) })]);
    const r = rng(12345);
    const rand = (n: number): number => Math.floor(r() * n);
    const listAt = file.indexOf(Buffer.from('mapped-ram')) + 10 + 17; // after the START header: the list
    let failures = 0;
    const codes = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const m = Buffer.from(file);
      for (let k = 0, n = 1 + rand(3); k < n; k++) {
        // Mostly the list, the first header and bitmap (60 bytes), sometimes anywhere.
        const at = rand(4) === 0 ? rand(m.length) : listAt + rand(60);
        m[at] = rand(4) === 0 ? 0xff : rand(256);
      }
      const input = i % 2 === 0 ? new Uint8Array(m) : pipe(m, i);
      try {
        await readQemuMigration(input, { store: new MemoryPageStore({ maxMemory: 64 << 20 }), maxImageSize: 2 ** 40 });
      } catch (err) {
        if (!(err instanceof XbzrleError)) throw new Error(`mutation ${i}: ${(err as Error).stack}`);
        expect(typeof err.offset === 'number' || err.code === 'ERR_LIMIT_EXCEEDED', `${err.code} without offset: ${err.message}`).toBe(true);
        failures++;
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
      }
    }
    expect(failures, JSON.stringify([...codes])).toBeGreaterThan(100);
    expect(codes.size).toBeGreaterThan(3);
  });
});

describe('probeQemuMigration (the CLI picks the mapped-ram fast path with it)', () => {
  it('reads the configuration only; null for other files', async () => {
    const { probeQemuMigration } = await import('../lib/qemu/migration-file.js');
    expect(await probeQemuMigration(path)).toEqual({ machine: 'pc-i440fx-10.0', capabilities: ['mapped-ram'], pageSize: 4096, uuid: null });
    const other = join(tmp, 'other.bin');
    await writeFile(other, 'not a migration');
    expect(await probeQemuMigration(other)).toBeNull();
  });
});
