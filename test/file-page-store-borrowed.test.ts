/**
 * PAGE records written straight from the decoder's input (FilePageStore.putBorrowed):
 * the store keeps views of the caller's chunk until the decoder is done with
 * it, so a chunk reused or scribbled over right after its write callback must
 * never reach the file — records cut across chunks (the parser's own buffer,
 * which it reuses) included.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FilePageStore, XbzrleDecodeStream, type PageRecord } from '../lib/index.js';
import { rng, sameBytes } from './helpers/bytes.js';
import { encodeRounds, writeThroughOneBuffer } from './helpers/streams.js';
import { tempDirEach } from './helpers/temp-dir.js';

const PS = 4096;
let dir = '';
tempDirEach('xbzrle-borrow-', (d) => (dir = d));

/** Rounds of a `pages`-page image: random, zero and lightly edited pages, each round sent whole in file order. */
function rounds(seed: number, pages: number, count: number): { records: PageRecord[][]; final: Uint8Array } {
  const rand = rng(seed);
  const r = (): number => Math.floor(rand() * 2 ** 32);
  const image = new Uint8Array(pages * PS);
  const out: PageRecord[][] = [];
  for (let k = 0; k < count; k++) {
    for (let p = 0; p < pages; p++) {
      const kind = r() % 8;
      const page = image.subarray(p * PS, (p + 1) * PS);
      if (kind === 0) page.fill(0);
      else if (kind === 1 || k === 0) for (let i = 0; i < PS; i += 8) page[i] = r() & 0xff;
      else if (kind < 5) page[r() % PS] = r() & 0xff; // a small edit: an XBZRLE delta
    }
    out.push([{ block: 'ram', offset: 0, data: image.slice() }]);
  }
  return { records: out, final: image };
}

/**
 * Decodes `stream` into a FilePageStore, handing the decoder `sizes`-long
 * pieces copied into ONE buffer that is scribbled over as soon as each
 * write's callback ran (the decoder is then done with it).
 */
async function decodeReusing(stream: Uint8Array, sizes: () => number, threads: number, cacheSize: number): Promise<Uint8Array> {
  const store = new FilePageStore({ dir, cacheSize });
  const dec = new XbzrleDecodeStream({ store, emitPages: false, threads });
  dec.resume();
  await writeThroughOneBuffer(dec, stream, sizes, 1 << 16);
  return new Uint8Array(await readFile(join(dir, 'ram.bin')));
}

describe('FilePageStore: PAGE records written from the input, which is reused after each write', () => {
  // (Worker threads too, the pool starting mid-stream: decode-borrowed-model.test.ts.)
  it('rebuilds the image whatever the chunk sizes (records cut across chunks)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1e6 }), fc.integer({ min: 1, max: 3 }), fc.constantFrom(13, 4096, 5000, 65536), async (seed, count, most) => {
        const { records, final } = rounds(seed, 24, count);
        const blocks = seed % 2 === 0 ? [{ id: 'ram', length: 24 * PS }] : undefined; // with MEM_SIZE, pages are taken from the first one
        const { bytes } = await encodeRounds(records, { cacheSize: 64 * PS, blocks });
        const r = rng(seed ^ 0x5eed);
        const image = await decodeReusing(bytes, () => 1 + Math.floor(r() * most), 1, 8 * PS);
        expect(sameBytes(image, final)).toBe(true);
        await rm(join(dir, 'ram.bin'));
      }),
      { numRuns: 12 },
    );
  });

  it('writes the pages before a bad record while its input is still there (a finish() after the error writes no scribbles)', async () => {
    const { records } = rounds(7, 16, 1);
    // MEM_SIZE first: the file is open before the first page (pages are taken only into an open file).
    const { bytes } = await encodeRounds(records, { cacheSize: 64 * PS, blocks: [{ id: 'ram', length: 16 * PS }] });
    const input = new Uint8Array(bytes.length + 8);
    input.set(bytes);
    // The EOS becomes a record with an unknown flag: the stream fails after every page was applied.
    input.set([0, 0, 0, 0, 0, 0, 0, 0x80], bytes.length - 8);
    const store = new FilePageStore({ dir, cacheSize: 8 * PS });
    const dec = new XbzrleDecodeStream({ store, emitPages: false, threads: 1 });
    dec.on('error', () => undefined);
    dec.resume();
    const failed = await new Promise<unknown>((resolve) => dec.write(input, (err) => resolve(err)));
    expect(failed).toBeInstanceOf(Error);
    input.fill(0xa5);
    await store.finish();
    const file = new Uint8Array(await readFile(join(dir, 'ram.bin')));
    expect(file.length).toBe(16 * PS);
    expect(sameBytes(file, records[0]![0]!.data)).toBe(true);
  });

  it('takes in-order pages without a copy, and writes them before anything else reads or writes the file', async () => {
    const store = new FilePageStore({ dir, cacheSize: 16 * PS });
    await store.declare([{ id: 'ram', length: 32 * PS }]);
    const page = (v: number): Uint8Array => new Uint8Array(PS).fill(v);
    await store.put('ram', 0, page(1)); // the cache takes its page size from the first page
    const a = page(2);
    const b = page(3);
    expect(store.putBorrowed('ram', PS, a)).toBe(true);
    expect(store.putBorrowed('ram', 2 * PS, b)).toBe(true);
    // A cached page is not taken (its slot would go out later, over it).
    expect(store.putBorrowed('ram', 0, page(9))).toBe(false);
    // Read back before any release: the views are written first.
    const into = new Uint8Array(PS);
    await store.get('ram', 2 * PS, into);
    expect(into[0]).toBe(3);
    // Released: the caller's memory is its own again.
    expect(store.putBorrowed('ram', 3 * PS, page(4))).toBe(true);
    store.releaseBorrowed();
    const c = page(5);
    expect(store.putBorrowed('ram', 4 * PS, c)).toBe(true);
    store.releaseBorrowed();
    c.fill(0xee); // after the release: not what the file holds
    await store.finish();
    const file = await readFile(join(dir, 'ram.bin'));
    expect([0, 1, 2, 3, 4].map((p) => file[p * PS])).toEqual([1, 2, 3, 4, 5]);
    expect(file.length).toBe(32 * PS);
  });

  it('refuses a page a queued write still covers (that write would land after it)', async () => {
    const store = new FilePageStore({ dir, cacheSize: 16 * PS });
    await store.declare([{ id: 'ram', length: 8 * PS }]);
    await store.put('ram', 0, new Uint8Array(PS).fill(1));
    await store.flush();
    // A write of page 1 queued (it runs on a later tick), as a window written out leaves one.
    (store as unknown as { writes: { submit(b: string, o: number, d: Uint8Array, s: null): void } }).writes.submit('ram', PS, new Uint8Array(PS).fill(6), null);
    expect(store.putBorrowed('ram', PS, new Uint8Array(PS).fill(7))).toBe(false);
    expect(store.putBorrowed('ram', 2 * PS, new Uint8Array(PS).fill(8))).toBe(true);
    await store.put('ram', PS, new Uint8Array(PS).fill(7)); // what a decoder does with a page refused
    await store.finish();
    const file = await readFile(join(dir, 'ram.bin'));
    expect([file[PS], file[2 * PS]]).toEqual([7, 8]);
  });

  it('refuses pages of a file another block shares (neither knows what the other has cached there)', async () => {
    const store = new FilePageStore({ path: () => join(dir, 'shared.bin'), cacheSize: 16 * PS });
    await store.declare([
      { id: 'a', length: 8 * PS },
      { id: 'b', length: 8 * PS },
    ]);
    await store.put('a', 0, new Uint8Array(PS).fill(1));
    await store.flush();
    expect(store.putBorrowed('a', PS, new Uint8Array(PS).fill(3))).toBe(false);
    await store.close();
  });

  it('drops what it holds on close() (after an error), writing nothing from memory the caller may have reused', async () => {
    const store = new FilePageStore({ dir, cacheSize: 16 * PS });
    await store.declare([{ id: 'ram', length: 8 * PS }]);
    await store.put('ram', 0, new Uint8Array(PS).fill(1));
    await store.flush();
    expect(store.putBorrowed('ram', PS, new Uint8Array(PS).fill(2))).toBe(true);
    await store.close();
    const file = await readFile(join(dir, 'ram.bin'));
    expect(file[PS]).toBe(0);
  });

  it('reports a failed write at the release (the input is then the caller’s again)', async () => {
    const store = new FilePageStore({ dir, cacheSize: 16 * PS });
    await store.declare([{ id: 'ram', length: 8 * PS }]);
    await store.put('ram', 0, new Uint8Array(PS).fill(1));
    await store.flush();
    const data = new Uint8Array(PS).fill(2);
    expect(store.putBorrowed('ram', PS, data)).toBe(true);
    // The file's descriptor closed under the store: the write fails.
    const files = (store as unknown as { files: Map<string, { opened: { fd: number; close(): Promise<void> } }> }).files;
    await files.get('ram')!.opened.close();
    expect(() => store.releaseBorrowed()).toThrow();
    expect(() => store.releaseBorrowed()).not.toThrow(); // nothing held any more
    await store.close();
  });
});
