import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blockFileName, FilePageStore, RecordWriter, XbzrleDecodeStream } from '../lib/index.js';
import { randomBytes, rng, sameBytes } from './helpers/bytes.js';
import { encodeRounds } from './helpers/streams.js';

const PS = 4096;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xbzrle-fps-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FilePageStore', () => {
  it('names block files with every "/" replaced by "_"', () => {
    expect(blockFileName('pc.ram')).toBe('pc.ram.bin');
    expect(blockFileName('0000:00:02.0/vga.vram')).toBe('0000:00:02.0_vga.vram.bin');
    expect(blockFileName('/rom@etc/acpi/tables')).toBe('_rom@etc_acpi_tables.bin');
  });

  it('reads never-written pages as zeros, sees its own buffered writes, and writes through on finish()', async () => {
    const store = new FilePageStore({ dir });
    const a = new Uint8Array(PS).fill(7);
    const into = new Uint8Array(PS).fill(1);
    await store.get('ram', 8 * PS, into);
    expect(into.every((v) => v === 0)).toBe(true);
    await store.put('ram', PS, a);
    await store.put('ram', 2 * PS, a.map(() => 8)); // gathered with the previous page
    await store.get('ram', PS, into);
    expect(into[0]).toBe(7);
    await store.put('ram', 10 * PS, a.map(() => 9)); // not contiguous: the run is written out
    await store.finish();
    const file = await readFile(join(dir, 'ram.bin'));
    expect(file.length).toBe(11 * PS);
    expect(file[0]).toBe(0);
    expect(file[PS]).toBe(7);
    expect(file[2 * PS]).toBe(8);
    expect(file[10 * PS]).toBe(9);
  });

  it('updates an existing image in place and truncates it to the declared length', async () => {
    const path = join(dir, 'img');
    await writeFile(path, new Uint8Array(8 * PS).fill(5));
    const store = new FilePageStore({ path: () => path });
    await store.declare([{ id: 'ram', length: 4 * PS }]);
    await store.put('ram', PS, new Uint8Array(PS).fill(6));
    await store.finish();
    const file = await readFile(path);
    expect(file.length).toBe(4 * PS);
    expect(file[0]).toBe(5);
    expect(file[PS]).toBe(6);
  });

  it('decodes a stream into files, one per block, equal to the source', async () => {
    const rand = rng(3);
    const ram = [randomBytes(64 * PS, rand), randomBytes(64 * PS, rand)];
    ram[1]!.fill(0, 0, 8 * PS);
    for (let i = 0; i < ram[1]!.length; i += 999) ram[1]![i] = ram[1]![i]! ^ 0x11;
    const vga = randomBytes(4 * PS, rand);
    const { bytes } = await encodeRounds(
      [
        [{ block: 'pc.ram', offset: 0, data: ram[0]! }, { block: 'a/vga', offset: 0, data: vga }],
        [{ block: 'pc.ram', offset: 0, data: ram[1]! }],
      ],
      { blocks: [{ id: 'pc.ram', length: 64 * PS }, { id: 'a/vga', length: 4 * PS }] },
    );
    const store = new FilePageStore({ dir, bufferSize: 5 * PS });
    await pipeline(Readable.from([bytes]), new XbzrleDecodeStream({ store, emitPages: false }));
    expect(sameBytes(await readFile(join(dir, 'pc.ram.bin')), ram[1]!)).toBe(true);
    expect(sameBytes(await readFile(join(dir, 'a_vga.bin')), vga)).toBe(true);
  });

  it('rebuilds a 4 GiB sparse image with memory held flat', async () => {
    const GiB4 = 4 * 1024 ** 3;
    const chunks: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: PS }, (c) => chunks.push(c));
    w.memSize([{ id: 'ram', length: GiB4 }]);
    const page = randomBytes(PS, rng(5));
    const offsets: number[] = [];
    for (let i = 0; i < 2000; i++) offsets.push(Math.floor((i * 2147483647) % (GiB4 / PS)) * PS);
    for (const off of offsets) w.page('ram', off, page, 0);
    for (const off of offsets) w.xbzrle('ram', off, Uint8Array.from([0x05, 0x01, 0xee]), 0, 3);
    w.eos();
    w.flush();
    const before = process.memoryUsage().rss;
    const store = new FilePageStore({ dir });
    await pipeline(Readable.from(chunks), new XbzrleDecodeStream({ store, emitPages: false }));
    const grown = process.memoryUsage().rss - before;
    const path = join(dir, 'ram.bin');
    const st = await stat(path);
    expect(st.size).toBe(GiB4);
    expect(st.blocks * 512).toBeLessThan(64 << 20); // sparse on disk
    expect(grown).toBeLessThan(64 << 20); // not the image
    const check = new FilePageStore({ path: () => path, truncate: false });
    const got = new Uint8Array(PS);
    for (const off of offsets.slice(0, 50)) {
      await check.get('ram', off, got);
      const want = page.slice();
      want[5] = 0xee;
      expect(sameBytes(got, want)).toBe(true);
    }
    await check.get('ram', 4096, got);
    expect(got.every((v) => v === 0) || offsets.includes(4096)).toBe(true);
    await check.close();
  });

  it('requires a dir or a path function', () => {
    expect(() => new FilePageStore({})).toThrow(TypeError);
  });
});
