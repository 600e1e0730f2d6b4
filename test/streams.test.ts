import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  createXbzrleDecodeStream,
  createXbzrleEncodeStream,
  MemoryPageStore,
  PageCache,
  RamRecordParser,
  RecordWriter,
  XbzrleDecodeStream,
  XbzrleEncodeStream,
  XbzrleError,
  type DecodedPage,
  type PageRecord,
  type PageStore,
} from '../lib/index.js';
import { atOffset, concat, hex, randomBytes, rng, sameBytes, split } from './helpers/bytes.js';
import { decodeChunks, encodeRounds } from './helpers/streams.js';

const PS = 4096;

/** Successive versions of an image: random base, then rounds of mixed changes. */
function makeRounds(pages: number, rounds: number, seed: number, pageSize = PS): Uint8Array[] {
  const rand = rng(seed);
  const out: Uint8Array[] = [];
  let img = randomBytes(pages * pageSize, rand);
  img.fill(0, 0, pageSize * Math.floor(pages / 4)); // some zero pages
  out.push(img);
  for (let r = 1; r < rounds; r++) {
    img = img.slice();
    for (let p = 0; p < pages; p++) {
      const at = p * pageSize;
      const pick = rand();
      if (pick < 0.3) continue; // unchanged
      if (pick < 0.6) {
        for (let k = 0; k < 1 + rand() * 8; k++) {
          const i = at + Math.floor(rand() * pageSize);
          img[i] = img[i]! ^ (1 + Math.floor(rand() * 255));
        }
      } else if (pick < 0.7) {
        img.fill(0, at, at + pageSize); // becomes zero
      } else if (pick < 0.8) {
        img.set(randomBytes(pageSize, rand), at); // overflows
      } else {
        const s = Math.floor(rand() * pageSize);
        img.fill(Math.floor(rand() * 256), s, Math.min(pageSize, s + Math.floor(rand() * 600)));
      }
    }
    out.push(img);
  }
  return out;
}

/** Runs images as rounds; returns the bytes and the byte length at the end of each round. */
async function encodeImages(images: Uint8Array[], options: ConstructorParameters<typeof XbzrleEncodeStream>[0] = {}, recordPages = 1): Promise<{ bytes: Uint8Array; ends: number[]; enc: XbzrleEncodeStream }> {
  const enc = new XbzrleEncodeStream(options);
  const ps = enc.pageSize;
  const chunks: Uint8Array[] = [];
  const ends: number[] = [];
  const sink = pipeline(enc, new Writable({ write(c: Buffer, _e, cb) { chunks.push(c); cb(); } }));
  images.forEach((img, r) => {
    for (let off = 0; off < img.length; off += ps * recordPages) {
      enc.write({ block: 'ram', offset: off, data: img.subarray(off, Math.min(img.length, off + ps * recordPages)) });
    }
    if (r < images.length - 1) enc.sync();
  });
  enc.end();
  await sink;
  const bytes = concat(chunks);
  // Round ends: the position after each EOS.
  const parser = new RamRecordParser({ pageSize: ps });
  parser.push(bytes);
  for (let rec = parser.next(); rec !== null; rec = parser.next()) if (rec.kind === 'eos') ends.push(rec.position + 8);
  return { bytes, ends, enc };
}

async function decodeImage(chunks: Uint8Array[], pageSize = PS): Promise<Uint8Array> {
  const store = new MemoryPageStore();
  await pipeline(Readable.from(chunks), new XbzrleDecodeStream({ store, pageSize, emitPages: false }));
  return store.read('ram');
}

describe('encode → decode round trips', () => {
  const images = makeRounds(64, 6, 11);

  it.each(['whole', 'random', 'bytes'] as const)('rebuilds every round from the stream fed in %s chunks', async (how) => {
    const { bytes, ends } = await encodeImages(images);
    expect(ends).toHaveLength(images.length);
    // Each prefix up to a round's EOS decodes to that round's image.
    for (let r = 0; r < images.length; r++) {
      if (how === 'bytes' && r < images.length - 1) continue; // single bytes: last round only (speed)
      const image = await decodeImage(split(bytes.subarray(0, ends[r]), how, r + 1, 3000));
      expect(sameBytes(image, images[r]!), `round ${r}`).toBe(true);
    }
  });

  it('uses every record kind and keeps QEMU’s counter identities', async () => {
    const { bytes, enc } = await encodeImages(images);
    const s = enc.stats.toJSON();
    const counts = { PAGE: 0, ZERO: 0, XBZRLE: 0, MEM_SIZE: 0, EOS: 0 };
    let xbzrleRecordBytes = 0;
    const p = new RamRecordParser({ pageSize: PS });
    p.push(bytes);
    for (let r = p.next(); r !== null; r = p.next()) {
      const key = ({ page: 'PAGE', zero: 'ZERO', xbzrle: 'XBZRLE', mem_size: 'MEM_SIZE', eos: 'EOS' } as const)[r.kind];
      counts[key]++;
      if (r.kind === 'xbzrle') xbzrleRecordBytes += r.size - 8;
    }
    p.end();
    expect(counts.XBZRLE).toBeGreaterThan(50);
    expect(s.ram.normal).toBe(counts.PAGE);
    expect(s.ram.duplicate).toBe(counts.ZERO);
    expect(s.ram['normal-bytes']).toBe(PS * counts.PAGE);
    expect(s.ram.transferred).toBe(bytes.length);
    expect(s.ram['dirty-sync-count']).toBe(images.length - 1);
    expect(s.records).toEqual(counts);
    const x = s['xbzrle-cache'];
    expect(x.overflow).toBeGreaterThan(0);
    expect(x.bytes).toBe(xbzrleRecordBytes + PS * x.overflow);
    expect(x.pages).toBe(counts.XBZRLE + x.overflow + s.ram.skipped);
    expect(s.ram.normal).toBe(x['cache-miss'] + x.overflow);
    expect(s.ram.skipped).toBeGreaterThan(0);
    expect(x['cache-size']).toBe(64 << 20);
    expect(x['cache-miss-rate']).toBeCloseTo(x['cache-miss'] / (counts.PAGE + counts.ZERO + counts.XBZRLE));
    expect(x['encoding-rate']).toBeCloseTo((x.pages * PS) / x.bytes);
  });

  it('gives the same bytes whether pages come one per record or in long runs', async () => {
    const one = await encodeImages(images, {}, 1);
    const runs = await encodeImages(images, {}, 13);
    expect(sameBytes(one.bytes, runs.bytes)).toBe(true);
  });

  it('accepts page data at any byteOffset', async () => {
    const shifted = images.map((img, i) => atOffset(img, 1 + (i % 3)));
    const a = await encodeImages(images);
    const b = await encodeImages(shifted);
    expect(sameBytes(a.bytes, b.bytes)).toBe(true);
  });

  it.each([1024, 2048, 8192, 16384])('works with %i-byte pages', async (pageSize) => {
    const imgs = makeRounds(16, 4, pageSize, pageSize);
    const { bytes } = await encodeImages(imgs, { pageSize, cacheSize: 1 << 20 });
    expect(sameBytes(await decodeImage(split(bytes, 'random', 2), pageSize), imgs[3]!)).toBe(true);
  });

  it('sends a fully changed 16 KiB page as PAGE (no XBZRLE delta exists for it)', async () => {
    const a = new Uint8Array(16384).fill(1);
    const b = new Uint8Array(16384).fill(2);
    const { bytes, enc } = await encodeImages([a, b], { pageSize: 16384, cacheSize: 1 << 20 });
    expect(enc.stats.overflow).toBe(1);
    expect(sameBytes(await decodeImage([bytes], 16384), b)).toBe(true);
  });

  it('round-trips random rounds of random images (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 5 }), fc.nat(), fc.constantFrom(PS, 1 << 14, 1 << 20), async (pages, rounds, seed, cacheSize) => {
        const imgs = makeRounds(pages, rounds, seed);
        const { bytes } = await encodeImages(imgs, { cacheSize });
        expect(sameBytes(await decodeImage(split(bytes, 'random', seed)), imgs[rounds - 1]!)).toBe(true);
      }),
      { numRuns: 60, seed: 1234 },
    );
  });
});

describe('XbzrleEncodeStream behaviour', () => {
  const page = (v: number): Uint8Array => new Uint8Array(PS).fill(v);

  it('writes `blocks` first as MEM_SIZE, and names a block only when it changes (CONTINUE otherwise)', async () => {
    const blocks = [
      { id: 'pc.ram', length: 4 * PS },
      { id: 'vga', length: 2 * PS },
    ];
    const { bytes } = await encodeRounds([[
      { block: 'pc.ram', offset: 0, data: concat([page(1), page(2)]) },
      { block: 'vga', offset: PS, data: page(3) },
      { block: 'vga', offset: 0, data: page(4) },
      { block: 'pc.ram', offset: 3 * PS, data: page(5) },
    ]], { blocks });
    const p = new RamRecordParser({ pageSize: PS });
    p.push(bytes);
    const seen: string[] = [];
    for (let r = p.next(); r !== null; r = p.next()) seen.push(r.kind === 'mem_size' ? 'MEM_SIZE' : r.kind === 'eos' ? 'EOS' : `${r.block}@${r.offset}${r.flags & 0x20 ? '+C' : ''}`);
    expect(seen).toEqual(['MEM_SIZE', 'pc.ram@0', `pc.ram@${PS}+C`, `vga@${PS}`, 'vga@0+C', `pc.ram@${3 * PS}`, 'EOS']);
    const { dec } = await decodeChunks([bytes]);
    expect(dec.blocks).toEqual(blocks);
  });

  it('follows QEMU’s per-page decisions: ZERO, miss → PAGE, unchanged hit → nothing, delta → XBZRLE, overflow → PAGE', async () => {
    const random = randomBytes(PS, rng(1));
    const tweaked = random.slice();
    tweaked[100] = tweaked[100]! ^ 0xff;
    const { bytes, enc } = await encodeRounds([
      [{ block: 'ram', offset: 0, data: page(0) }, { block: 'ram', offset: PS, data: random }],
      [{ block: 'ram', offset: 0, data: page(0) }, { block: 'ram', offset: PS, data: random }],
      [{ block: 'ram', offset: PS, data: tweaked }],
      [{ block: 'ram', offset: PS, data: randomBytes(PS, rng(2)) }],
    ]);
    const p = new RamRecordParser({ pageSize: PS });
    p.push(bytes);
    const kinds: string[] = [];
    for (let r = p.next(); r !== null; r = p.next()) kinds.push(r.kind);
    expect(kinds).toEqual(['zero', 'page', 'eos', 'zero', 'eos', 'xbzrle', 'eos', 'page', 'eos']);
    expect(enc.stats).toMatchObject({ duplicate: 2, normal: 2, skipped: 1, overflow: 1, cacheMiss: 1, xbzrlePages: 3 });
  });

  it('with xbzrle: false sends only PAGE and ZERO and leaves the cache alone', async () => {
    const cache = new PageCache({ size: 1 << 20 });
    const { bytes, enc } = await encodeRounds([[{ block: 'ram', offset: 0, data: concat([page(0), page(7)]) }], [{ block: 'ram', offset: 0, data: concat([page(0), page(7)]) }]], { xbzrle: false, cache });
    expect(enc.stats.records).toMatchObject({ PAGE: 2, ZERO: 2, XBZRLE: 0 });
    expect(cache.count).toBe(0);
    expect(cache.hits + cache.misses).toBe(0);
    // Named ZERO (8 + 1 + 3 + 1), PAGE with CONTINUE (8 + 4096), EOS; then ZERO and PAGE with CONTINUE, EOS.
    expect(bytes.length).toBe(13 + (8 + PS) + 8 + 9 + (8 + PS) + 8);
  });

  it('protects hot pages: with one slot, a page hit every round keeps it and the other page always misses', async () => {
    const a = randomBytes(PS, rng(3));
    const b = randomBytes(PS, rng(4));
    const rounds: PageRecord[][] = [];
    for (let r = 0; r < 5; r++) {
      a[r] = a[r]! ^ 1;
      b[r] = b[r]! ^ 1;
      rounds.push([{ block: 'ram', offset: 0, data: a.slice() }, { block: 'ram', offset: PS, data: b.slice() }]);
    }
    const { bytes, enc } = await encodeRounds(rounds, { cacheSize: PS });
    expect(enc.stats.records.XBZRLE).toBe(4);
    expect(enc.stats.records.PAGE).toBe(6);
    expect(enc.cache.refused).toBe(5);
    const { dec } = await decodeChunks([bytes]);
    expect(sameBytes((dec.store as MemoryPageStore).read('ram'), concat([a, b]))).toBe(true);
  });

  it('orders sync() after the writes before it without waiting, and end() writes a final EOS', async () => {
    const enc = new XbzrleEncodeStream();
    const out: Buffer[] = [];
    enc.on('data', (c: Buffer) => out.push(c));
    enc.write({ block: 'ram', offset: 0, data: page(1) });
    enc.sync();
    enc.write({ block: 'ram', offset: PS, data: page(2) });
    enc.sync({ final: true });
    enc.end();
    await new Promise((r) => enc.on('end', r));
    const p = new RamRecordParser({ pageSize: PS });
    p.push(concat(out));
    const kinds: string[] = [];
    for (let r = p.next(); r !== null; r = p.next()) kinds.push(r.kind);
    expect(kinds).toEqual(['page', 'eos', 'page', 'eos', 'eos']);
    expect(enc.stats.dirtySyncCount).toBe(2);
    expect(enc.cache.generation).toBe(2);
  });

  it('after sync({ final: true }) stops filling the cache but stays correct when a page is sent twice', async () => {
    const cache = new PageCache({ size: 1 << 20 });
    const base = randomBytes(2 * PS, rng(5));
    const v2 = base.slice();
    v2[10] = v2[10]! ^ 1;
    const v3 = v2.slice();
    v3[20] = v3[20]! ^ 1;
    const enc = new XbzrleEncodeStream({ cache });
    const chunks: Buffer[] = [];
    const done = pipeline(enc, new Writable({ write(c: Buffer, _e, cb) { chunks.push(c); cb(); } }));
    enc.write({ block: 'ram', offset: 0, data: base.subarray(0, PS) });
    enc.sync({ final: true });
    enc.write({ block: 'ram', offset: PS, data: base.subarray(PS) }); // miss in the last stage: not cached
    enc.write({ block: 'ram', offset: 0, data: v2.subarray(0, PS) }); // hit: XBZRLE, entry dropped
    enc.write({ block: 'ram', offset: 0, data: v3.subarray(0, PS) }); // miss now: PAGE
    enc.write({ block: 'ram', offset: 0, data: v3.subarray(0, PS) }); // miss again: PAGE (not skipped!)
    enc.end();
    await done;
    expect(cache.has(PS)).toBe(false);
    expect(cache.has(0)).toBe(false);
    expect(enc.stats.records).toMatchObject({ PAGE: 4, XBZRLE: 1 });
    const { dec } = await decodeChunks(chunks);
    expect(sameBytes((dec.store as MemoryPageStore).read('ram'), concat([v3.subarray(0, PS), base.subarray(PS)]))).toBe(true);
  });

  it('resizes the cache while streaming (setCacheSize) and stays in step with the decoder', async () => {
    const images = makeRounds(128, 6, 21);
    const enc = new XbzrleEncodeStream({ cacheSize: 16 * PS });
    const chunks: Buffer[] = [];
    const done = pipeline(enc, new Writable({ write(c: Buffer, _e, cb) { chunks.push(c); cb(); } }));
    const sizes = [64 * PS, 8 * PS, 1 << 20, PS, 32 * PS];
    for (const [r, img] of images.entries()) {
      for (let off = 0; off < img.length; off += 4 * PS) {
        enc.write({ block: 'ram', offset: off, data: img.subarray(off, off + 4 * PS) });
        if (off === 64 * PS) enc.setCacheSize(sizes[r % sizes.length]!);
      }
      enc.sync();
    }
    const lastSize = enc.cache.size;
    expect(enc.stats.cacheSize).toBe(lastSize);
    enc.end();
    await done;
    // The stream's own cache is released when it closes; the stats keep its last size.
    expect(lastSize).toBe(sizes[5 % sizes.length]!);
    expect(enc.stats.cacheSize).toBe(lastSize);
    expect(enc.stats.records.XBZRLE).toBeGreaterThan(0);
    expect(sameBytes(await decodeImage(chunks), images[5]!)).toBe(true);
  });

  it('shares one PageCache across successive streams to the same receiver', async () => {
    const images = makeRounds(32, 4, 31);
    const cache = new PageCache({ size: 1 << 20 });
    const store = new MemoryPageStore();
    for (const img of images) {
      const { bytes } = await encodeRounds([[{ block: 'ram', offset: 0, data: img }]], { cache });
      await pipeline(Readable.from([bytes]), new XbzrleDecodeStream({ store, emitPages: false }));
      expect(sameBytes(store.read('ram'), img)).toBe(true);
    }
    expect(cache.hits).toBeGreaterThan(0);
  });

  it('never lets a block run into the next one in a shared cache, even past its declared length', async () => {
    const cache = new PageCache({ size: 1 << 20 });
    cache.declareBlocks([
      { id: 'a', length: PS },
      { id: 'b', length: PS },
    ]);
    const store = new MemoryPageStore();
    const send = async (records: PageRecord[]): Promise<void> => {
      const { bytes } = await encodeRounds([records], { cache });
      await pipeline(Readable.from([bytes]), new XbzrleDecodeStream({ store, emitPages: false }));
    };
    const bPage = randomBytes(PS, rng(77));
    const aPage = bPage.slice();
    aPage[9] = aPage[9]! ^ 1;
    await send([{ block: 'b', offset: 0, data: bPage }]);
    // 'a' at offset PS would be key PS, b's page, if 'a' were not moved: a delta against b's page.
    await send([{ block: 'a', offset: PS, data: aPage }]);
    expect(sameBytes(store.read('b'), bPage)).toBe(true);
    expect(sameBytes(store.read('a').subarray(PS), aPage)).toBe(true);
    expect(cache.blockBase('a')).toBeGreaterThanOrEqual(2 * PS);
  });

  it.each([
    ['a non-object', 42],
    ['a missing block', { offset: 0, data: new Uint8Array(PS) }],
    ['non-Uint8Array data', { block: 'ram', offset: 0, data: [1, 2, 3] }],
    ['a wrong data length', { block: 'ram', offset: 0, data: new Uint8Array(100) }],
    ['empty data', { block: 'ram', offset: 0, data: new Uint8Array(0) }],
    ['an unaligned offset', { block: 'ram', offset: 100, data: new Uint8Array(PS) }],
    ['a negative offset', { block: 'ram', offset: -PS, data: new Uint8Array(PS) }],
    ['an empty block name', { block: '', offset: 0, data: new Uint8Array(PS) }],
    ['a 256-byte block name', { block: 'x'.repeat(256), offset: 0, data: new Uint8Array(PS) }],
  ])('rejects %s with ERR_INVALID_RECORD through pipeline()', async (_what, record) => {
    const enc = new XbzrleEncodeStream();
    const err = await pipeline(Readable.from([record]), enc, new Writable({ write(_c, _e, cb) { cb(); } })).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(XbzrleError);
    expect((err as XbzrleError).code).toBe('ERR_INVALID_RECORD');
  });

  it('rejects records for undeclared blocks or past a declared block when `blocks` were given', async () => {
    for (const record of [
      { block: 'rom', offset: 0, data: new Uint8Array(PS) },
      { block: 'ram', offset: PS, data: new Uint8Array(2 * PS) },
    ]) {
      const enc = new XbzrleEncodeStream({ blocks: [{ id: 'ram', length: 2 * PS }] });
      const err = await pipeline(Readable.from([record]), enc, new Writable({ write(_c, _e, cb) { cb(); } })).then(() => undefined, (e: unknown) => e);
      expect((err as XbzrleError).code).toBe('ERR_INVALID_RECORD');
    }
  });

  it('validates options', () => {
    expect(() => new XbzrleEncodeStream({ pageSize: 3000 })).toThrow(RangeError);
    expect(() => new XbzrleEncodeStream({ pageSize: 512 })).toThrow(RangeError);
    expect(() => new XbzrleEncodeStream({ pageSize: 32768 })).toThrow(RangeError);
    expect(() => new XbzrleEncodeStream({ cacheSize: 100 })).toThrow(RangeError);
    expect(() => new XbzrleEncodeStream({ chunkSize: (64 << 20) + 1 })).toThrow(RangeError); // not an 8 GiB slab
    expect(() => new XbzrleEncodeStream({ chunkSize: 0 })).toThrow(RangeError);
    expect(() => new XbzrleEncodeStream({ cache: new PageCache({ size: 1 << 20, pageSize: 8192 }) })).not.toThrow();
    expect(new XbzrleEncodeStream({ cache: new PageCache({ size: 1 << 20, pageSize: 8192 }) }).pageSize).toBe(8192);
    expect(() => new XbzrleEncodeStream({ pageSize: 4096, cache: new PageCache({ size: 1 << 20, pageSize: 8192 }) })).toThrow(TypeError);
    expect(() => new XbzrleEncodeStream({ blocks: [{ id: 'a', length: 100 }] })).toThrow(RangeError);
    expect(() => new XbzrleEncodeStream({ blocks: [{ id: 'a', length: PS }, { id: 'a', length: PS }] })).toThrow(TypeError);
    expect(() => new XbzrleDecodeStream({ pageSize: 100 })).toThrow(RangeError);
    expect(() => new XbzrleDecodeStream({ store: {} as PageStore })).toThrow(TypeError);
    expect(createXbzrleEncodeStream()).toBeInstanceOf(XbzrleEncodeStream);
    expect(createXbzrleDecodeStream()).toBeInstanceOf(XbzrleDecodeStream);
  });
});

describe('backpressure', () => {
  it('the encoder pauses inside one huge record while the reader is full', async () => {
    const data = randomBytes(8 << 20, rng(9)); // 2048 pages, all misses: ~8 MiB of PAGE records
    const enc = new XbzrleEncodeStream({ cacheSize: 1 << 20 });
    enc.write({ block: 'ram', offset: 0, data });
    enc.end();
    let maxBuffered = 0;
    let total = 0;
    for await (const chunk of enc) {
      maxBuffered = Math.max(maxBuffered, enc.readableLength);
      total += (chunk as Buffer).length;
      await sleep(0);
    }
    expect(total).toBe(enc.stats.transferred);
    // Bounded by the high-water mark plus about one chunk, not by the 8 MiB record.
    expect(maxBuffered).toBeLessThanOrEqual(64 * 1024 + 2 * 70 * 1024);
  });

  it('the decoder pauses inside one huge input chunk while the reader is full', async () => {
    const images = [randomBytes(8 << 20, rng(10))];
    const { bytes } = await encodeImages(images);
    const dec = new XbzrleDecodeStream();
    dec.end(bytes);
    let maxBuffered = 0;
    let pages = 0;
    for await (const _p of dec) {
      maxBuffered = Math.max(maxBuffered, dec.readableLength);
      pages++;
      if (pages % 64 === 0) await sleep(1);
    }
    expect(pages).toBe(2048);
    expect(maxBuffered).toBeLessThanOrEqual(17);
  });

  it('a fast producer and a slow consumer keep both buffers bounded over 16 MiB of records', async () => {
    const enc = new XbzrleEncodeStream({ cacheSize: 1 << 20 });
    const rand = rng(12);
    let written = 0;
    let maxRecords = 0;
    let maxBytes = 0;
    const producer = (async () => {
      // 16 MiB: 4096 PAGE records, 16 times the cache and over 100 times the bounds checked below (it was
      // 64 MiB, ~2 s of random bytes and encoding per project for nothing a longer run adds).
      for (let i = 0; i < 16; i++) {
        // A fresh 1 MiB of random pages per write: 16 MiB of distinct pages through a 1 MiB cache.
        const ok = enc.write({ block: 'ram', offset: i << 20, data: randomBytes(1 << 20, rand) });
        written += 1 << 20;
        if (!ok) await new Promise((r) => enc.once('drain', r));
      }
      enc.end();
    })();
    let out = 0;
    await pipeline(
      enc,
      new Writable({
        highWaterMark: 64 * 1024,
        write(c: Buffer, _e, cb) {
          out += c.length;
          maxRecords = Math.max(maxRecords, enc.writableLength);
          maxBytes = Math.max(maxBytes, enc.readableLength);
          setImmediate(cb);
        },
      }),
    );
    await producer;
    expect(written).toBe(16 << 20);
    expect(out).toBeGreaterThan(16 << 20); // all PAGE records
    // Records waiting: the writable high-water mark (16); bytes waiting: about one chunk over the readable one.
    expect(maxRecords).toBeLessThanOrEqual(16);
    expect(maxBytes).toBeLessThanOrEqual(64 * 1024 + 70 * 1024);
  });
});

describe('review regressions', () => {
  it('stays in step when a synchronous data handler resizes the cache mid-page', async () => {
    const images = makeRounds(32, 4, 51);
    const enc = new XbzrleEncodeStream({ cacheSize: 64 * PS, chunkSize: 1 });
    const chunks: Buffer[] = [];
    let n = 0;
    enc.on('data', (c: Buffer) => {
      chunks.push(c);
      if (++n % 7 === 0) enc.setCacheSize(n % 2 === 0 ? 16 * PS : 64 * PS);
    });
    const ended = new Promise((r) => enc.on('end', r));
    for (const [r, img] of images.entries()) {
      enc.write({ block: 'ram', offset: 0, data: img });
      if (r < images.length - 1) enc.sync();
    }
    enc.end();
    await ended;
    expect(enc.stats.records.XBZRLE).toBeGreaterThan(0);
    expect(sameBytes(await decodeImage(chunks), images[3]!)).toBe(true);
  });

  it('clears a shared cache when a stream fails, so the next stream does not send deltas against unsent pages', async () => {
    const cache = new PageCache({ size: 1 << 20 });
    const store = new MemoryPageStore();
    const v1 = new Uint8Array(PS).fill(1);
    const v2 = v1.slice();
    v2[0] = 2;
    const enc1 = new XbzrleEncodeStream({ cache });
    const sent: Buffer[] = [];
    enc1.on('data', (c: Buffer) => sent.push(c));
    enc1.write({ block: 'ram', offset: 0, data: v1 }); // cached, but still in the writer's chunk
    enc1.write({ block: 'ram', offset: 1, data: v1 }); // invalid: the stream fails
    await new Promise((r) => enc1.on('error', r));
    expect(sent).toHaveLength(0);
    expect(cache.count).toBe(0);
    const { bytes } = await encodeRounds([[{ block: 'ram', offset: 0, data: v2 }]], { cache });
    await pipeline(Readable.from([bytes]), new XbzrleDecodeStream({ store, emitPages: false }));
    expect(sameBytes(store.read('ram'), v2)).toBe(true);
  });

  it('clears a shared cache when the stream is destroyed after end() with output still unread, and keeps it once everything was read', async () => {
    const v1 = new Uint8Array(PS).fill(1);
    // Ended, output still in the readable buffer, then destroyed: the receiver got nothing.
    const cache = new PageCache({ size: 1 << 20 });
    const enc1 = new XbzrleEncodeStream({ cache });
    enc1.end({ block: 'ram', offset: 0, data: v1 });
    await sleep(20); // flushed: the EOS is in the readable buffer, nobody reads
    expect(enc1.writableFinished).toBe(true);
    expect(enc1.readableLength).toBeGreaterThan(0);
    expect(cache.count).toBe(1);
    enc1.destroy();
    await new Promise((r) => enc1.on('close', r));
    expect(cache.count).toBe(0);
    // Read to the end: the cache keeps the page for the next stream.
    const enc2 = new XbzrleEncodeStream({ cache });
    enc2.end({ block: 'ram', offset: 0, data: v1 });
    enc2.resume();
    await new Promise((r) => enc2.on('close', r));
    expect(cache.count).toBe(1);
  });

  it('snapshots pages that live in a SharedArrayBuffer', async () => {
    const images = makeRounds(8, 3, 61);
    const shared = images.map((img) => {
      const s = new Uint8Array(new SharedArrayBuffer(img.length));
      s.set(img);
      return s;
    });
    const a = await encodeImages(images);
    const b = await encodeImages(shared);
    expect(sameBytes(a.bytes, b.bytes)).toBe(true);
  });

  it('refuses block names that are not well-formed UTF-16 (they would not survive UTF-8)', async () => {
    const enc = new XbzrleEncodeStream();
    const err = await pipeline(Readable.from([{ block: 'a\uD800', offset: 0, data: new Uint8Array(PS) }]), enc, new Writable({ write(_c, _e, cb) { cb(); } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as XbzrleError).code).toBe('ERR_INVALID_RECORD');
    expect(() => new XbzrleEncodeStream({ blocks: [{ id: '\uDC00x', length: PS }] })).toThrow(RangeError);
  });

  it("MemoryPageStore.locate serves each block's own segment, grows the extent, and forgets everything on dispose", () => {
    const store = new MemoryPageStore();
    const a = store.locate('a', PS, PS, true)!;
    a.bytes.fill(1, a.at, a.at + PS);
    // The same segment index in another block is another segment (never written: undefined).
    expect(store.locate('b', PS, PS, false)).toBeUndefined();
    const b = store.locate('b', 2 * PS, PS, true)!;
    b.bytes.fill(2, b.at, b.at + PS);
    expect(store.locate('a', 2 * PS, PS, false)!.bytes[2 * PS]).toBe(0);
    expect(store.locate('a', 0, PS, false)!.bytes[PS]).toBe(1);
    // The next page of the same segment, created: the block grows to it.
    store.locate('a', 3 * PS, PS, true);
    expect(store.blocks()).toEqual([
      { id: 'a', length: 4 * PS },
      { id: 'b', length: 3 * PS },
    ]);
    expect(store.read('b')[2 * PS]).toBe(2);
    store.dispose();
    expect(store.locate('a', 2 * PS, PS, false)).toBeUndefined();
    expect(store.locate('b', 2 * PS, PS, false)).toBeUndefined();
    expect(store.locate('a', 0, PS, true)!.bytes[PS]).toBe(0);
  });

  it('bounds the memory a hostile stream can make MemoryPageStore allocate (maxMemory)', async () => {
    // ZERO records with fill 1 at offsets 64 KiB apart: 9 bytes of input per 64 KiB segment.
    const chunks: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: PS }, (c) => chunks.push(c));
    for (let i = 0; i < 100; i++) w.zero('ram', i * 65536, 1);
    w.eos();
    w.flush();
    const store = new MemoryPageStore({ maxMemory: 1 << 20 });
    const err = await pipeline(Readable.from(chunks), new XbzrleDecodeStream({ store, emitPages: false })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as XbzrleError).code).toBe('ERR_LIMIT_EXCEEDED');
    expect((err as XbzrleError).offset).toBe(13 + 15 * 9); // the 17th record
    expect(store.memoryUsage).toBeLessThanOrEqual(1 << 20);
  });

  it('a record refused by maxMemory does not grow the block (XBZRLE into a page never written)', async () => {
    const chunks: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: PS }, (c) => chunks.push(c));
    w.page('ram', 0, new Uint8Array(PS).fill(1), 0); // one 64 KiB segment: the whole budget
    w.flush();
    chunks.push(hex('0000000000100060 01 0003 000155 0000000000000010')); // XBZRLE|CONTINUE at 1 MiB (a new segment), EOS
    const store = new MemoryPageStore({ maxMemory: 64 * 1024 });
    const err = await pipeline(Readable.from(chunks), new XbzrleDecodeStream({ store, emitPages: false })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as XbzrleError).code).toBe('ERR_LIMIT_EXCEEDED');
    expect(store.blocks()).toEqual([{ id: 'ram', length: PS }]);
    // Nor a view refused in a block the store has not seen.
    expect(() => store.view('other', 0, PS)).toThrow(XbzrleError);
    expect(store.blocks()).toEqual([{ id: 'ram', length: PS }]);
  });
});

describe('destroy while paused inside a large input', () => {
  it('settles the encoder’s pending write and sync() callbacks with the error', async () => {
    const enc = new XbzrleEncodeStream({ blocks: [{ id: 'ram', length: 16 << 20 }] });
    const results: string[] = [];
    enc.write({ block: 'ram', offset: 0, data: randomBytes(8 << 20, rng(3)) }, (e) => results.push(`write ${e?.message}`));
    enc.sync((e) => results.push(`sync ${e?.message}`));
    enc.on('error', () => {});
    await new Promise((r) => setTimeout(r, 50)); // nobody reads: the encoder pauses mid-record
    enc.destroy(new Error('peer gone'));
    await new Promise((r) => setTimeout(r, 50));
    expect(results).toEqual(['write peer gone', 'sync peer gone']);
  });

  it('settles the decoder’s pending write callback with the error', async () => {
    const { bytes } = await encodeImages([randomBytes(4 << 20, rng(6))]);
    const dec = new XbzrleDecodeStream();
    const results: string[] = [];
    dec.write(bytes, (e) => results.push(`write ${e?.message}`));
    dec.on('error', () => {});
    await new Promise((r) => setTimeout(r, 50));
    dec.destroy(new Error('reset'));
    await new Promise((r) => setTimeout(r, 50));
    expect(results).toEqual(['write reset']);
  });

  it('settles the encoder’s write and sync() callbacks when a synchronous \'data\' handler destroys it mid-input, and encodes nothing after', async () => {
    const cache = new PageCache({ size: 1 << 20 });
    const enc = new XbzrleEncodeStream({ cache });
    const results: string[] = [];
    enc.on('error', () => {});
    enc.on('data', () => enc.destroy(new Error('consumer gave up')));
    enc.write({ block: 'ram', offset: 0, data: randomBytes(64 * PS, rng(9)) }, (e) => results.push(`write ${e?.message}`));
    enc.sync((e) => results.push(`sync ${e?.message ?? (e as { code?: string } | null)?.code}`));
    await new Promise((r) => setTimeout(r, 100));
    expect(results[0]).toBe('write consumer gave up');
    expect(results[1]).toMatch(/^sync /);
    expect(results).toHaveLength(2);
    // The shared cache was emptied at the destroy and no page was encoded into it after.
    expect(cache.count).toBe(0);
  });

  it('settles the decoder’s write callback when a synchronous \'data\' handler destroys it mid-input, and applies nothing after', async () => {
    const { bytes } = await encodeImages([randomBytes(64 * PS, rng(10))]);
    for (const readableHighWaterMark of [1, 16]) {
      const store = new MemoryPageStore();
      const dec = new XbzrleDecodeStream({ store, readableHighWaterMark });
      const results: string[] = [];
      dec.on('error', () => {});
      let appliedAtDestroy = -1;
      dec.on('data', () => {
        appliedAtDestroy = dec.stats.normal;
        dec.destroy(new Error('consumer gave up'));
      });
      dec.write(bytes, (e) => results.push(`write ${e?.message}`));
      await new Promise((r) => setTimeout(r, 100));
      expect(results).toEqual(['write consumer gave up']);
      expect(dec.stats.normal).toBe(appliedAtDestroy);
    }
  });
});

describe('errors reach pipeline()', () => {
  it('a malformed stream rejects the pipeline with the XbzrleError', async () => {
    const err = await pipeline(Readable.from([Buffer.from('not a ram stream at all')]), new XbzrleDecodeStream(), new Writable({ objectMode: true, write(_c, _e, cb) { cb(); } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(XbzrleError);
  });

  it('a failing asynchronous store rejects the pipeline', async () => {
    const store: PageStore = {
      get: async () => {},
      put: async () => {
        throw new Error('disk full');
      },
    };
    const { bytes } = await encodeImages([new Uint8Array(PS).fill(1)]);
    await expect(pipeline(Readable.from([bytes]), new XbzrleDecodeStream({ store }), new Writable({ objectMode: true, write(_c, _e, cb) { cb(); } }))).rejects.toThrow('disk full');
  });

  it('a store outside the kernel memory decodes long deltas (and fails on corrupt ones) exactly like the memory store', async () => {
    // Dense changes: every page goes out as an XBZRLE delta of ~2.4 KiB, long enough for
    // the staged kernel decoder when the store's pages are ordinary arrays.
    const first = randomBytes(8 * PS, rng(77));
    const second = first.slice();
    for (let i = 0; i < second.length; i += 5) second[i] = second[i]! ^ 0x3c;
    const { bytes } = await encodeImages([first, second]);
    const decodeWith = async (data: Uint8Array, kind: 'memory' | 'plain'): Promise<{ image?: Uint8Array; error?: string }> => {
      const mem = new MemoryPageStore();
      const pages = new Map<string, Uint8Array>();
      const plain: PageStore = {
        get: (b, o, into) => void into.set(pages.get(`${b}@${o}`) ?? new Uint8Array(into.length)),
        put: (b, o, d) => void pages.set(`${b}@${o}`, d.slice()),
      };
      try {
        await pipeline(Readable.from(split(data, 'random', 5)), new XbzrleDecodeStream({ store: kind === 'memory' ? mem : plain }), new Writable({ objectMode: true, write(_p, _e, cb) { cb(); } }));
      } catch (err) {
        return { error: `${(err as XbzrleError).code} @${(err as XbzrleError).offset}` };
      }
      if (kind === 'memory') return { image: mem.read('ram') };
      const image = new Uint8Array(8 * PS);
      for (let p = 0; p < 8; p++) image.set(pages.get(`ram@${p * PS}`) ?? new Uint8Array(PS), p * PS);
      return { image };
    };
    const good = await decodeWith(bytes, 'plain');
    expect(sameBytes(good.image!, second)).toBe(true);
    // One corrupted byte at a time across the second round: same outcome either way.
    const rand = rng(78);
    let errors = 0;
    for (let t = 0; t < 24; t++) {
      const bad = bytes.slice();
      const at = bytes.length - 1 - Math.floor(rand() * (bytes.length / 2));
      bad[at] = bad[at]! ^ (1 + Math.floor(rand() * 255));
      const [m, p] = [await decodeWith(bad, 'memory'), await decodeWith(bad, 'plain')];
      expect(p.error).toBe(m.error);
      if (m.error === undefined) expect(sameBytes(p.image!, m.image!)).toBe(true);
      else if (m.error.startsWith('ERR_XBZRLE_CORRUPT')) errors++;
    }
    expect(errors).toBeGreaterThan(3); // the corruptions reached the deltas' checks
  });

  it('an asynchronous store decodes the same as the memory store', async () => {
    const images = makeRounds(16, 4, 41);
    const { bytes } = await encodeImages(images);
    const mem = new MemoryPageStore();
    const store: PageStore = {
      get: (b, o, into) => new Promise((r) => setImmediate(() => r(mem.get(b, o, into)))),
      put: (b, o, data) => {
        const copy = data.slice();
        return new Promise((r) => setImmediate(() => r(mem.put(b, o, copy))));
      },
    };
    const pages: DecodedPage[] = [];
    await pipeline(Readable.from(split(bytes, 'random', 3)), new XbzrleDecodeStream({ store }), new Writable({ objectMode: true, write(p: DecodedPage, _e, cb) { pages.push(p); cb(); } }));
    expect(sameBytes(mem.read('ram'), images[3]!)).toBe(true);
    expect(pages.length).toBeGreaterThan(16);
  });
});
