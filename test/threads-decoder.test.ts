import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocPages, encodeRounds, encodeXbzrle, FilePageStore, freePages, MemoryPageStore, RamRecordParser, RecordWriter, XbzrleDecodeStream, XbzrleError, type PageStore } from '../lib/index.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat, rng, split } from './helpers/bytes.js';

const PS = 4096;
const engine = getEngine();
const poolAvailable = getKernelPool(engine, 2) !== null;
const dir = mkdtempSync(join(tmpdir(), 'xbzrle-threads-decoder-'));
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
  rmSync(dir, { recursive: true, force: true });
});
let files = 0;

/** Decodes `bytes` (split as given) into a new store; the store's image, the stats, or the error. */
async function decode(
  chunks: Uint8Array[],
  threads: number,
  pageSize = PS,
  fileCache?: number,
): Promise<{ image: Uint8Array | null; stats: unknown; error: { code: string; offset: number | undefined } | null }> {
  const pad = allocPages(1); // the store's 64 KiB segments then start off an 8 or 16 KiB boundary
  const path = join(dir, `img${files++}`);
  // A file store with `fileCache`: a cache that small writes pages out and reads them back all along.
  // (Its workers from the first record: by default a file store starts them after 4 MiB of deltas.)
  const store: PageStore = fileCache === undefined ? new MemoryPageStore() : new FilePageStore({ path: () => path, cacheSize: fileCache, parallelAfter: 0 });
  freePages(pad);
  const dec = new XbzrleDecodeStream({ store, emitPages: false, threads, pageSize });
  const done = new Promise<void>((resolve, reject) => {
    dec.on('finish', resolve);
    dec.on('error', reject);
  });
  for (const c of chunks) dec.write(c);
  dec.end();
  let error = null;
  try {
    await done;
  } catch (err) {
    if (!(err instanceof XbzrleError)) throw err;
    error = { code: err.code, offset: err.offset };
  }
  let image: Uint8Array | null = null;
  if (store instanceof MemoryPageStore) {
    if (error === null && store.has('ram')) image = store.read('ram');
    store.dispose();
  } else {
    await (store as FilePageStore).close();
    if (error === null) image = readFileSync(path);
  }
  const s = dec.stats.toJSON();
  return { image, stats: error === null ? { ...s, ram: { ...s.ram, 'pages-per-second': 0 } } : null, error };
}

/**
 * Writes `chunks` to a decoder with `threads` through one buffer, filled
 * again with the next chunk once the decoder is done with the last (as a
 * reader reusing its buffer does); the store's blocks and the image of each.
 */
async function decodeThroughOneBuffer(chunks: Uint8Array[], threads: number): Promise<{ blocks: unknown; images: Uint8Array[] }> {
  const store = new MemoryPageStore();
  const dec = new XbzrleDecodeStream({ store, emitPages: false, threads });
  const buffer = Buffer.alloc(Math.max(...chunks.map((c) => c.length)));
  for (const c of chunks) {
    buffer.set(c);
    await new Promise<void>((resolve, reject) => dec.write(buffer.subarray(0, c.length), (err) => (err ? reject(err) : resolve())));
  }
  await new Promise<void>((resolve, reject) => {
    dec.on('finish', resolve);
    dec.on('error', reject);
    dec.end();
  });
  dec.destroy();
  const blocks = store.blocks();
  const images = blocks.map((b) => store.read(b.id));
  store.dispose();
  return { blocks, images };
}

/**
 * A stream without MEM_SIZE (the store's extents are the blocks' lengths):
 * `n` records on random pages of three blocks, ZERO, PAGE and XBZRLE records
 * mixed, offsets going up and down.
 */
function extentStream(n: number, seed: number): Uint8Array {
  const rand = rng(seed);
  const out: Uint8Array[] = [];
  const w = new RecordWriter({ pageSize: PS }, (c) => out.push(c.slice()));
  const page = new Uint8Array(PS);
  const next = new Uint8Array(PS);
  const delta = new Uint8Array(PS);
  const blocks = ['ram', 'vga', 'rom'];
  for (let i = 0; i < n; i++) {
    const block = blocks[Math.floor(rand() * rand() * 3)]!;
    const offset = Math.floor(rand() * 600) * PS;
    const k = rand();
    if (k < 0.2) w.zero(block, offset, rand() < 0.5 ? 0 : 1 + Math.floor(rand() * 255));
    else if (k < 0.5) {
      for (let b = 0; b < PS; b += 64) page[b] = Math.floor(rand() * 256);
      w.page(block, offset, page, 0);
    } else {
      // A delta from zeros: valid against any page, it sets the bytes it names.
      next.fill(0);
      for (let e = 0; e < 1 + Math.floor(rand() * 30); e++) next[Math.floor(rand() * PS)] = 1 + Math.floor(rand() * 255);
      const len = encodeXbzrle(page.fill(0), next, delta);
      if (len > 0) w.xbzrle(block, offset, delta, 0, len);
    }
  }
  w.eos();
  w.flush();
  return concat(out);
}

/** A stream of rounds of a changing image: zero pages, small edits, rewrites. */
async function stream(pages: number, rounds: number, seed: number, ps = PS): Promise<Uint8Array> {
  const float = rng(seed);
  const rand = (): number => (float() * 4294967296) >>> 0;
  const items = [];
  let img = new Uint8Array(pages * ps);
  for (let r = 0; r < rounds; r++) {
    img = img.slice();
    for (let p = 0; p < pages; p++) {
      const k = rand() % 8;
      if (k === 0) img.fill(0, p * ps, (p + 1) * ps);
      else if (k === 1) for (let i = 0; i < ps; i += 4) img[p * ps + i] = rand() & 0xff;
      else if (k < 5) for (let e = 0; e < 1 + (rand() % 40); e++) img[p * ps + (rand() % ps)] = rand() & 0xff;
    }
    items.push([{ block: 'ram', offset: 0, data: img }]);
  }
  const out: Uint8Array[] = [];
  for await (const c of encodeRounds(items, { cacheSize: 1 << 24, pageSize: ps })) out.push(c);
  return concat(out);
}

describe.skipIf(!poolAvailable)('decoder on several threads', () => {
  it('rebuilds the image and counts as one thread, the input split anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 4 }), fc.nat(), fc.constantFrom('whole', 'random') as fc.Arbitrary<'whole' | 'random'>, fc.constantFrom(1024, 4096, 8192, 16384), async (pages, rounds, seed, how, ps) => {
        const bytes = await stream(Math.ceil((pages * PS) / ps), rounds, seed, ps);
        const chunks = split(bytes, how, seed, 300_000);
        const one = await decode(chunks, 1, ps);
        const two = await decode(chunks, 2, ps);
        expect(one.error).toBeNull();
        expect(two.error).toBeNull();
        expect(Buffer.compare(two.image!, one.image!)).toBe(0);
        expect(two.stats).toEqual(one.stats);
      }),
      { numRuns: 12 },
    );
  });

  it.each([
    { store: 'a MemoryPageStore', cache: undefined, seed: 7, picks: 3, tries: 12 },
    { store: 'a FilePageStore', cache: 64 * PS, seed: 9, picks: 5, tries: 8 },
  ])('fails a corrupt delta in $store with the error and offset of one thread', async ({ cache, seed, picks, tries }) => {
    const bytes = await stream(1500, 3, seed);
    // Corrupt bytes inside the later rounds (deltas mostly): whatever fails, it fails the same way.
    const rand = rng(picks);
    for (let t = 0; t < tries; t++) {
      const bad = bytes.slice();
      const at = Math.floor(bytes.length / 3 + rand() * (bytes.length * 2 / 3 - 1));
      bad[at] = bad[at]! ^ 0x5a;
      const one = await decode([bad], 1);
      const two = await decode([bad], 2, PS, cache);
      expect(two.error).toEqual(one.error);
      if (one.error === null) expect(Buffer.compare(two.image!, one.image!)).toBe(0);
    }
  });

  it('fails a corrupt delta with the error and offset of one thread while the workers run the batch before', async () => {
    // Some 12 000 records: the failing delta is in a batch the workers run while the next is filled.
    const bytes = await stream(4000, 3, 11);
    const rand = rng(5);
    for (let t = 0; t < 6; t++) {
      const bad = bytes.slice();
      const at = Math.floor(bytes.length / 3 + rand() * (bytes.length * 2 / 3 - 1));
      bad[at] = bad[at]! ^ 0x5a;
      const chunks = split(bad, 'random', t, 200_000);
      const one = await decode(chunks, 1);
      const two = await decode(chunks, 2);
      expect(two.error).toEqual(one.error);
      if (one.error === null) expect(Buffer.compare(two.image!, one.image!)).toBe(0);
    }
  });

  it('reads the input anew when the writer fills the same buffer again for each chunk', async () => {
    const bytes = await stream(3000, 3, 21);
    for (const max of [5_000, 100_000, 1_000_000]) {
      const chunks = split(bytes, 'random', max, max);
      const one = await decodeThroughOneBuffer(chunks, 1);
      const two = await decodeThroughOneBuffer(chunks, 2);
      expect(two.blocks).toEqual(one.blocks);
      for (let i = 0; i < one.images.length; i++) expect(Buffer.compare(two.images[i]!, one.images[i]!)).toBe(0);
    }
  });

  it('holds a round in the store once its EOS ends the input, before the next round comes', async () => {
    const rand = rng(3);
    const images: Uint8Array[] = [];
    let img = new Uint8Array(3000 * PS);
    for (let r = 0; r < 3; r++) {
      img = img.slice();
      for (let e = 0; e < 20_000; e++) img[Math.floor(rand() * img.length)] = Math.floor(rand() * 256);
      images.push(img);
    }
    const out: Uint8Array[] = [];
    for await (const c of encodeRounds(images.map((data) => [{ block: 'ram', offset: 0, data }]), { cacheSize: 1 << 24 })) out.push(c);
    const bytes = concat(out);
    // Each round's input: up to the end of its EOS.
    const parser = new RamRecordParser({ pageSize: PS });
    parser.push(bytes);
    const ends: number[] = [];
    for (let rec = parser.next(); rec !== null; rec = parser.next()) if (rec.kind === 'eos') ends.push(rec.position + 8);
    expect(ends.length).toBe(4); // the last round ends with two
    const store = new MemoryPageStore();
    const dec = new XbzrleDecodeStream({ store, emitPages: false, threads: 2 });
    for (let r = 0; r < 3; r++) {
      const round = bytes.subarray(r === 0 ? 0 : ends[r - 1], r === 2 ? bytes.length : ends[r]);
      await new Promise<void>((resolve, reject) => dec.write(round, (err) => (err ? reject(err) : resolve())));
      expect(Buffer.compare(store.read('ram'), images[r]!)).toBe(0);
    }
    dec.end();
    dec.destroy();
    store.dispose();
  });

  it('records the extents of one thread, blocks interleaved and offsets going up and down', async () => {
    for (const seed of [1, 2, 3]) {
      const bytes = extentStream(10_000, seed);
      const chunks = split(bytes, 'random', seed, 300_000);
      const one = await decodeThroughOneBuffer(chunks, 1);
      const two = await decodeThroughOneBuffer(chunks, 2);
      expect((one.blocks as unknown[]).length).toBe(3);
      expect(two.blocks).toEqual(one.blocks);
      for (let i = 0; i < one.images.length; i++) expect(Buffer.compare(two.images[i]!, one.images[i]!)).toBe(0);
    }
  });

  it('writes the pages into a FilePageStore from the workers, as one thread does, whatever its cache', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1200 }), fc.integer({ min: 1, max: 3 }), fc.nat(), fc.constantFrom(PS, 16 * PS, 1 << 20, 1 << 24), async (pages, rounds, seed, cache) => {
        const bytes = await stream(pages, rounds, seed);
        const chunks = split(bytes, 'random', seed, 300_000);
        const memory = await decode(chunks, 1);
        const one = await decode(chunks, 1, PS, cache);
        const two = await decode(chunks, 2, PS, cache);
        expect(one.error).toBeNull();
        expect(two.error).toBeNull();
        expect(Buffer.compare(one.image!, memory.image!)).toBe(0);
        expect(Buffer.compare(two.image!, memory.image!)).toBe(0);
        expect(two.stats).toEqual(memory.stats);
      }),
      { numRuns: 8 },
    );
  });

  it("moves a FilePageStore's cache to the kernel's memory for the workers, and only then", async () => {
    const plain = new FilePageStore({ path: () => join(dir, 'plain'), cacheSize: 1 << 20, parallelAfter: 0 });
    const plainLoc = plain.locate('ram', 0, PS, true)!;
    expect(engine!.addressOf(plainLoc.bytes)).toBe(-1); // kernel memory is never given back to the system
    plainLoc.bytes.fill(7, plainLoc.at, plainLoc.at + PS);
    new XbzrleDecodeStream({ store: plain, emitPages: false, threads: 2 }).destroy();
    const loc = plain.locate('ram', 0, PS, false)!;
    expect(engine!.addressOf(loc.bytes)).toBeGreaterThan(0);
    expect(loc.bytes[loc.at + PS - 1]).toBe(7); // moved with its pages
    await plain.close();
  });


  it('starts the workers for a FilePageStore only after 4 MiB of deltas (its cache stays plain memory until then), with the same image', async () => {
    // 2 200 pages, each an XBZRLE record of 2 003 bytes (2 000 bytes from offset 0): 4.4 MB of deltas.
    const delta = new Uint8Array(3 + 2000);
    delta.set([0x00, 0xd0, 0x0f]); // no unchanged bytes, then 2 000 changed ones
    const out: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: PS }, (c) => out.push(c.slice()));
    w.memSize([{ id: 'ram', length: 2200 * PS }]);
    for (let p = 0; p < 2200; p++) {
      delta.fill((p % 251) + 1, 3);
      w.xbzrle('ram', p * PS, delta, 0, delta.length);
    }
    w.eos();
    w.flush();
    const bytes = concat(out);
    const images: Buffer[] = [];
    for (const threads of [1, 2]) {
      const path = join(dir, `lazy${threads}`);
      const store = new FilePageStore({ path: () => path, cacheSize: 1 << 20 });
      const dec = new XbzrleDecodeStream({ store, emitPages: false, threads });
      const inKernel = (): boolean => engine!.addressOf((store as unknown as { slab: Uint8Array }).slab) > 0; // the cache's memory
      const cut = 8 + 1 + 3 + 8 + 1 + 2000 * (8 + 3 + 2003); // MEM_SIZE, then about the first 2 000 records
      await new Promise<void>((resolve, reject) => dec.write(bytes.subarray(0, cut), (err) => (err ? reject(err) : resolve())));
      expect(inKernel()).toBe(false); // 4.0 MB of deltas so far: still one thread, plain memory
      const eos = bytes.length - 8;
      await new Promise<void>((resolve, reject) => dec.write(bytes.subarray(cut, eos), (err) => (err ? reject(err) : resolve())));
      expect(inKernel()).toBe(threads === 2); // past 4 MiB: the workers came, the cache with them
      await new Promise<void>((resolve, reject) => {
        dec.on('error', reject);
        dec.end(bytes.subarray(eos), resolve);
      });
      images.push(readFileSync(path));
    }
    expect(images[0]!.length).toBe(2200 * PS);
    expect(images[1]!.equals(images[0]!)).toBe(true);
    expect(images[0]![PS + 1999]).toBe(2);
  });

  it('a MEM_SIZE that shrinks the block shrinks the file, with 1 thread and with 2', async () => {
    const delta = new Uint8Array([0x00, 0x01, 0xab]); // byte 0 set to 0xab
    const out: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: PS }, (c) => out.push(c.slice()));
    w.memSize([{ id: 'ram', length: 4 * PS }]);
    w.page('ram', 3 * PS, new Uint8Array(PS).fill(1), 0);
    w.xbzrle('ram', 2 * PS, delta, 0, delta.length);
    w.zero('ram', 1 * PS, 0);
    w.eos();
    w.memSize([{ id: 'ram', length: 2 * PS }]);
    w.eos();
    w.flush();
    for (const threads of [1, 2]) {
      const got = await decode([concat(out)], threads, PS, 1 << 20);
      expect(got.error).toBeNull();
      expect(got.image!.length).toBe(2 * PS);
    }
  });
});
