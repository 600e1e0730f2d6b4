import fs from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { blockFileName, FilePageStore, RecordWriter, XbzrleDecodeStream } from '../lib/index.js';
import { randomBytes, rng, sameBytes } from './helpers/bytes.js';
import { encodeRounds } from './helpers/streams.js';
import { FileModel } from './helpers/file-model.js';

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

  it('creates its folder (and missing parents) when it does not exist, as readQemuMigration users expect', async () => {
    const nested = join(dir, 'not', 'yet');
    const store = new FilePageStore({ dir: nested });
    await store.declare([{ id: 'pc.ram', length: 4 * PS }]);
    await store.put('pc.ram', PS, new Uint8Array(PS).fill(5));
    await store.finish();
    const image = await readFile(join(nested, 'pc.ram.bin'));
    expect(image.length).toBe(4 * PS);
    expect(image[PS]).toBe(5);
    // A `path` function's folders are the caller's: a missing one is an error, not created.
    const byPath = new FilePageStore({ path: () => join(dir, 'absent', 'x.bin') });
    await expect(Promise.resolve(byPath.put('x', 0, new Uint8Array(PS))).then(() => byPath.finish())).rejects.toMatchObject({ code: 'ENOENT' });
    await byPath.close();
  });

  it('finishes once: finish() again does nothing (readQemuMigration finished it already); finish() after close() throws', async () => {
    const store = new FilePageStore({ dir });
    await store.declare([{ id: 'ram', length: 4 * PS }]);
    await store.put('ram', 0, new Uint8Array(PS).fill(5));
    store.hole('ram', 3 * PS, PS); // an extent past the data: finish() makes the file reach it
    await store.finish();
    await store.finish();
    const image = await readFile(join(dir, 'ram.bin'));
    expect(image.length).toBe(4 * PS);
    expect(image[0]).toBe(5);
    const closed = new FilePageStore({ dir: join(dir, 'c') });
    await closed.put('ram', 0, new Uint8Array(PS).fill(1));
    await closed.close();
    await expect(closed.finish()).rejects.toThrow('FilePageStore is closed');
  });

  it('reads never-written pages as zeros, sees its own cached writes, and writes them out on finish()', async () => {
    const store = new FilePageStore({ dir });
    const a = new Uint8Array(PS).fill(7);
    const into = new Uint8Array(PS).fill(1);
    await store.get('ram', 8 * PS, into);
    expect(into.every((v) => v === 0)).toBe(true);
    await store.put('ram', PS, a);
    await store.put('ram', 2 * PS, a.map(() => 8));
    await store.get('ram', PS, into);
    expect(into[0]).toBe(7);
    await store.put('ram', 10 * PS, a.map(() => 9));
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

  it('keeps written pages in memory until the cache is written out', async () => {
    const path = join(dir, 'img');
    const store = new FilePageStore({ path: () => path, cacheSize: 8 * PS });
    for (let i = 0; i < 4; i++) await store.put('ram', i * PS, new Uint8Array(PS).fill(i + 1));
    await expect(stat(path)).rejects.toThrow(/ENOENT/); // no I/O at all yet
    await store.flush();
    const file = await readFile(path);
    expect(file.length).toBe(4 * PS);
    expect([file[0], file[PS], file[2 * PS], file[3 * PS]]).toEqual([1, 2, 3, 4]);
    await store.close();
  });

  it('serves cached pages without reading the file', async () => {
    const path = join(dir, 'img');
    const store = new FilePageStore({ path: () => path, cacheSize: 8 * PS });
    await store.put('ram', 2 * PS, new Uint8Array(PS).fill(9));
    await store.flush();
    await writeFile(path, new Uint8Array(4 * PS).fill(1)); // behind the store's back
    const got = new Uint8Array(PS);
    expect(store.get('ram', 2 * PS, got)).toBeUndefined(); // synchronous: no I/O
    expect(got.every((v) => v === 9)).toBe(true);
    await store.get('ram', PS, got); // not cached: read from the file
    expect(got.every((v) => v === 1)).toBe(true);
    await store.close();
  });

  it('writes cached pages sorted by offset, adjacent ones in writes of up to bufferSize', async () => {
    const path = join(dir, 'img');
    const writes: number[] = [];
    const original = fs.writeSync;
    const spy = vi.spyOn(fs, 'writeSync').mockImplementation(function (this: unknown, ...args: unknown[]) {
      writes.push(args[4] as number);
      return (original as (...a: unknown[]) => number).apply(this, args);
    });
    try {
      const store = new FilePageStore({ path: () => path, cacheSize: 64 * PS, bufferSize: 16 * PS });
      const order = Array.from({ length: 40 }, (_, i) => i);
      const rand = rng(11);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const p of order) await store.put('ram', p * PS, new Uint8Array(PS).fill(p));
      await store.put('ram', 50 * PS, new Uint8Array(PS).fill(50)); // not adjacent: a write of its own
      await store.finish();
      expect(writes).toEqual([0, 16 * PS, 32 * PS, 50 * PS]);
      const file = await readFile(path);
      for (const p of [...order, 50]) expect(file[p * PS]).toBe(p);
    } finally {
      spy.mockRestore();
    }
  });

  it('lets an odd-sized write replace the cached pages it overlaps, and an odd-sized read see cached writes', async () => {
    const store = new FilePageStore({ dir, cacheSize: 4 * PS });
    await store.put('ram', 0, new Uint8Array(PS).fill(1));
    const odd = new Uint8Array(100);
    await store.get('ram', 50, odd); // another size: reads the file, which must hold the cached page
    expect(odd.every((v) => v === 1)).toBe(true);
    await store.put('ram', 10, new Uint8Array(20).fill(2));
    const page = new Uint8Array(PS);
    await store.get('ram', 0, page);
    expect([page[9], page[10], page[29], page[30]]).toEqual([1, 2, 2, 1]);
    await store.close();
  });

  it('drops cached pages past the end when a declared block truncates its file', async () => {
    const store = new FilePageStore({ dir, cacheSize: 8 * PS });
    await store.put('ram', 6 * PS, new Uint8Array(PS).fill(3));
    await store.declare([{ id: 'ram', length: 4 * PS }]);
    const page = new Uint8Array(PS).fill(0xcc);
    await store.get('ram', 6 * PS, page);
    expect(page.every((v) => v === 0)).toBe(true);
    await store.finish();
    expect((await stat(join(dir, 'ram.bin'))).size).toBe(4 * PS);
  });

  it('caches pages of the size first written, whatever size was read before', async () => {
    const path = join(dir, 'img');
    const store = new FilePageStore({ path: () => path, cacheSize: 4 * PS });
    await store.get('ram', 0, new Uint8Array(100)); // an odd read first
    await store.put('ram', PS, new Uint8Array(PS).fill(4));
    await expect(stat(path)).resolves.toMatchObject({ size: 0 }); // cached, not written
    await store.finish();
    expect((await readFile(path))[PS]).toBe(4);
  });

  it('never gathers pages of two blocks into one write', async () => {
    const store = new FilePageStore({ dir, cacheSize: 8 * PS, bufferSize: 8 * PS });
    await store.put('a', 0, new Uint8Array(PS).fill(1));
    await store.put('b', PS, new Uint8Array(PS).fill(2));
    await store.finish();
    expect((await readFile(join(dir, 'a.bin'))).length).toBe(PS);
    const b = await readFile(join(dir, 'b.bin'));
    expect([b.length, b[0], b[PS]]).toEqual([2 * PS, 0, 2]);
  });

  it('behaves as a plain file under any mix of cached, odd-sized, truncating and flushing calls', async () => {
    type Op =
      | { kind: 'put'; block: number; page: number; fill: number }
      | { kind: 'get'; block: number; page: number }
      | { kind: 'putOdd'; block: number; at: number; len: number; fill: number }
      | { kind: 'getOdd'; block: number; at: number; len: number }
      | { kind: 'declare'; block: number; pages: number }
      | { kind: 'flush' }
      | { kind: 'edit'; block: number; page: number; at: number; xor: number }
      | { kind: 'overwrite'; block: number; page: number; fill: number }
      | { kind: 'fill'; block: number; page: number; fill: number };
    const P = 64; // small pages keep the model cheap
    const block = fc.integer({ min: 0, max: 1 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), block, page: fc.integer({ min: 0, max: 5 }), fill: fc.integer({ min: 1, max: 255 }) }) },
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('get' as const), block, page: fc.integer({ min: 0, max: 7 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('putOdd' as const), block, at: fc.integer({ min: 0, max: 6 * P }), len: fc.integer({ min: 1, max: 2 * P }), fill: fc.integer({ min: 1, max: 255 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('getOdd' as const), block, at: fc.integer({ min: 0, max: 6 * P }), len: fc.integer({ min: 1, max: 2 * P }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('declare' as const), block, pages: fc.integer({ min: 0, max: 7 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
      // The in-place capability: locate (prepare when it gives null), as a decoder uses it.
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('edit' as const), block, page: fc.integer({ min: 0, max: 6 }), at: fc.integer({ min: 0, max: P - 1 }), xor: fc.integer({ min: 1, max: 255 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('overwrite' as const), block, page: fc.integer({ min: 0, max: 6 }), fill: fc.integer({ min: 1, max: 255 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('fill' as const), block, page: fc.integer({ min: 0, max: 6 }), fill: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })) }) },
    );
    /** The page's place in the store's memory, prepared when the store asks; null when it still cannot serve it. */
    const place = async (store: FilePageStore, name: string, offset: number, create: boolean) => {
      const loc = store.locate(name, offset, P, create);
      if (loc !== null) return loc;
      await store.prepare(name, offset, P, create);
      return store.locate(name, offset, P, create);
    };
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.oneof(fc.integer({ min: 0, max: 4 * P + P / 2 }), fc.integer({ min: 8 * P, max: 16 * P })), fc.integer({ min: 1, max: 3 * P }), async (ops, cacheBytes, bufferBytes) => {
        const sub = join(dir, `run${run++}`);
        const { mkdir } = await import('node:fs/promises');
        await mkdir(sub);
        const names = ['a', 'b/c'];
        const files = new FileModel(names.length);
        const model = files.files;
        const write = (b: number, at: number, data: Uint8Array) => files.write(b, at, data);
        const read = (b: number, at: number, len: number) => files.read(b, at, len);
        // Cache and write buffer in bytes: below a page, between pages, several pages.
        const store = new FilePageStore({ dir: sub, cacheSize: cacheBytes, bufferSize: bufferBytes });
        for (const o of ops) {
          if (o.kind === 'put') {
            const data = new Uint8Array(P).fill(o.fill);
            write(o.block, o.page * P, data);
            await store.put(names[o.block]!, o.page * P, data);
          } else if (o.kind === 'putOdd') {
            const data = new Uint8Array(o.len).fill(o.fill);
            write(o.block, o.at, data);
            await store.put(names[o.block]!, o.at, data);
          } else if (o.kind === 'get' || o.kind === 'getOdd') {
            const at = o.kind === 'get' ? o.page * P : o.at;
            const len = o.kind === 'get' ? P : o.len;
            const got = new Uint8Array(len).fill(0xcc);
            await store.get(names[o.block]!, at, got);
            expect(sameBytes(got, read(o.block, at, len))).toBe(true);
          } else if (o.kind === 'edit') {
            const page = read(o.block, o.page * P, P);
            page[o.at]! ^= o.xor;
            write(o.block, o.page * P, page);
            const loc = await place(store, names[o.block]!, o.page * P, false);
            if (loc === null) await store.put(names[o.block]!, o.page * P, page); // the cache does not take it
            else loc.bytes[loc.at + o.at]! ^= o.xor;
          } else if (o.kind === 'overwrite') {
            const data = new Uint8Array(P).fill(o.fill);
            write(o.block, o.page * P, data);
            const loc = await place(store, names[o.block]!, o.page * P, true);
            if (loc === null) await store.put(names[o.block]!, o.page * P, data);
            else loc.bytes.set(data, loc.at);
          } else if (o.kind === 'fill') {
            write(o.block, o.page * P, new Uint8Array(P).fill(o.fill));
            await store.fill(names[o.block]!, o.page * P, P, o.fill);
          } else if (o.kind === 'declare') {
            const length = o.pages * P;
            files.truncate(o.block, length);
            await store.declare([{ id: names[o.block]!, length }]);
          } else {
            await store.flush();
          }
        }
        await store.finish();
        for (let b = 0; b < names.length; b++) {
          const file = await readFile(join(sub, blockFileName(names[b]!))).catch(() => new Uint8Array(0));
          expect(sameBytes(file, model[b]!)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('writes a page again that was put again while its write was under way', async () => {
    const path = join(dir, 'img');
    const store = new FilePageStore({ path: () => path, cacheSize: 4 * PS });
    const original = fs.writeSync;
    let once = true;
    const spy = vi.spyOn(fs, 'writeSync').mockImplementation(function (this: unknown, ...args: unknown[]) {
      if (once) {
        once = false;
        void store.put('ram', 0, new Uint8Array(PS).fill(2)); // cached: synchronous
      }
      return (original as (...a: unknown[]) => number).apply(this, args);
    });
    try {
      await store.put('ram', 0, new Uint8Array(PS).fill(1));
      await store.flush();
      await store.finish();
      expect((await readFile(path))[0]).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });

  it('serves pages asked for in file order in place, reading the ones after each miss ahead in one read', async () => {
    const path = join(dir, 'ahead');
    const pages = 512;
    const image = new Uint8Array(pages * PS);
    for (let p = 0; p < pages; p++) image.fill((p % 251) + 1, p * PS, (p + 1) * PS);
    await writeFile(path, image);
    const spy = vi.spyOn(fs, 'readSync');
    const store = new FilePageStore({ path: () => path, cacheSize: 256 * PS });
    try {
      for (let p = 0; p < pages; p++) {
        let loc = store.locate('ram', p * PS, PS, false);
        if (loc === null) {
          await store.prepare('ram', p * PS, PS, false);
          loc = store.locate('ram', p * PS, PS, false);
        }
        expect(loc).not.toBeNull();
        expect(sameBytes(loc!.bytes.subarray(loc!.at, loc!.at + PS), image.subarray(p * PS, (p + 1) * PS))).toBe(true);
        loc!.bytes[loc!.at] = 0; // an edit in place
        image[p * PS] = 0;
      }
      // Reads double from one page up to 256 KiB (64 pages): 1+2+…+32, then 64 at a time: 14 reads, not 512.
      expect(spy.mock.calls.length).toBeLessThanOrEqual(14);
      await store.finish();
      expect(sameBytes(await readFile(path), image)).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });

  it('reads a page missed away from the last read alone, not the pages after it', async () => {
    const path = join(dir, 'scattered');
    const pages = 4096;
    const image = new Uint8Array(pages * PS);
    for (let p = 0; p < pages; p++) image[p * PS] = (p % 251) + 1;
    await writeFile(path, image);
    const spy = vi.spyOn(fs, 'readSync');
    const store = new FilePageStore({ path: () => path, cacheSize: 1024 * PS });
    try {
      // Deltas scattered over the image, 37 pages apart: one page read per miss.
      for (let p = 0; p < pages; p += 37) {
        let loc = store.locate('ram', p * PS, PS, false);
        if (loc === null) {
          await store.prepare('ram', p * PS, PS, false);
          loc = store.locate('ram', p * PS, PS, false);
        }
        expect(loc!.bytes[loc!.at]).toBe((p % 251) + 1);
      }
      const lengths = spy.mock.calls.map((c) => (c as unknown[])[3] as number);
      expect(lengths.length).toBe(Math.ceil(pages / 37));
      expect(lengths.every((n) => n === PS)).toBe(true);
      await store.close();
    } finally {
      spy.mockRestore();
    }
  });

  it('leaves a zero page a hole where the file holds zeros, and writes zeros over data (also data not yet written out when the file opened)', async () => {
    const path = join(dir, 'holes');
    await writeFile(path, new Uint8Array(2 * PS).fill(5)); // two pages of data before the store
    const store = new FilePageStore({ path: () => path, cacheSize: 8 * PS, bufferSize: 4 * PS });
    await store.put('ram', 3 * PS, new Uint8Array(PS).fill(6)); // cached: the file not even opened yet
    await store.flush(); // opened now, with the page written
    await store.fill('ram', 3 * PS, PS, 0); // data there: zeros written
    await store.fill('ram', 1 * PS, PS, 0); // the file's own data: zeros written
    for (let p = 4; p < 256; p++) await store.fill('ram', p * PS, PS, 0); // never written: holes
    await store.finish();
    const file = await readFile(path);
    expect(file.length).toBe(256 * PS);
    expect([file[0], file[PS], file[2 * PS], file[3 * PS]]).toEqual([5, 0, 0, 0]);
    expect(file.subarray(3 * PS).every((v) => v === 0)).toBe(true);
    expect((await stat(path)).blocks * 512).toBeLessThan(64 * PS); // 252 pages of holes, not written
  });

  it('writes pages put in file order as they come, a window at a time, before any flush', async () => {
    const path = join(dir, 'behind');
    const store = new FilePageStore({ path: () => path, cacheSize: 64 * PS, bufferSize: 8 * PS });
    for (let p = 0; p < 32; p++) {
      if (p % 3 === 1) await store.fill('ram', p * PS, PS, 0); // holes in the windows
      else await store.put('ram', p * PS, new Uint8Array(PS).fill(p + 1));
    }
    // Three full windows went out without a flush (the fourth waits: nothing left it yet), once the
    // file is open (an asynchronous open the writes wait for).
    let early = new Uint8Array(0);
    for (let tries = 0; tries < 200 && early.length < 23 * PS; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      early = await readFile(path).catch(() => new Uint8Array(0));
    }
    expect(early.length).toBeGreaterThanOrEqual(23 * PS);
    for (let p = 0; p < 24; p++) expect(early[p * PS]).toBe(p % 3 === 1 ? 0 : p + 1);
    await store.finish();
    const file = await readFile(path);
    for (let p = 0; p < 32; p++) expect(file[p * PS]).toBe(p % 3 === 1 ? 0 : p + 1);
  });

  it('keeps a stream in file order in a few windows of cache, not the whole cache, and keeps pages that were used', async () => {
    const path = join(dir, 'stream');
    const store = new FilePageStore({ path: () => path, cacheSize: 1024 * PS, bufferSize: 16 * PS });
    await store.put('ram', 5000 * PS, new Uint8Array(PS).fill(9)); // a page used again below
    await store.get('ram', 5000 * PS, new Uint8Array(PS)); // (a hit: it gets a second chance)
    for (let p = 0; p < 2000; p++) {
      if (p % 5 === 0) await store.fill('ram', p * PS, PS, 0);
      else await store.put('ram', p * PS, new Uint8Array(PS).fill((p % 250) + 1));
    }
    const used = (store as unknown as { used: number }).used;
    expect(used).toBeLessThanOrEqual(1024 / 8 + 3 * 16); // an eighth of the cache plus a few windows, not 1024
    const reads = vi.spyOn(fs, 'readSync');
    try {
      const got = new Uint8Array(PS);
      expect(store.get('ram', 5000 * PS, got)).toBeUndefined(); // still cached: no read
      expect(got[0]).toBe(9);
      expect(reads).not.toHaveBeenCalled();
    } finally {
      reads.mockRestore();
    }
    await store.finish();
    const file = await readFile(path);
    for (let p = 0; p < 2000; p++) expect(file[p * PS]).toBe(p % 5 === 0 ? 0 : (p % 250) + 1);
    expect(file[5000 * PS]).toBe(9);
  });

  it('refuses a cacheSize no buffer can hold, before any I/O', () => {
    expect(() => new FilePageStore({ dir, cacheSize: 2 ** 33 })).toThrow(RangeError);
    expect(() => new FilePageStore({ dir, cacheSize: -1 })).toThrow(RangeError);
  });

  it('refuses calls after close()', async () => {
    const store = new FilePageStore({ dir });
    await store.close();
    await expect(Promise.resolve(store.put('ram', 0, new Uint8Array(PS)))).rejects.toThrow(/closed/);
    await expect(Promise.resolve(store.get('ram', 0, new Uint8Array(PS)))).rejects.toThrow(/closed/);
  });

  it('requires a dir or a path function', () => {
    expect(() => new FilePageStore({})).toThrow(TypeError);
  });
});
