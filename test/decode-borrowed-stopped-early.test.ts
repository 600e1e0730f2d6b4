/**
 * a decoder stopped while pages borrowed from its chunk are still pending
 * (stream destroyed while paused on backpressure, Web reader cancelled) hands the chunk
 * back to its writer through the write's error, but DecoderCore.dispose() does not release
 * the borrowed pages: a later store.finish()/flush() writes them from memory the writer
 * may have reused (as the existing "finish() after the error writes no scribbles" test
 * requires for errors).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeRecords, FilePageStore, XbzrleDecodeStream } from '../lib/index.js';
import { XbzrleDecoderStream } from '../lib/web/index.js';
import { buildRecords } from './helpers/streams.js';
import { tempDirEach } from './helpers/temp-dir.js';

const PS = 4096;
let dir = '';
tempDirEach('xbzrle-borrow-', (d) => (dir = d));

function stream(pages: number): Uint8Array {
  return buildRecords((w) => {
    w.memSize([{ id: 'ram', length: pages * PS }]);
    for (let p = 0; p < pages; p++) w.page('ram', p * PS, new Uint8Array(PS).fill(p + 1), 0);
    w.eos();
  });
}

async function pageBytes(pages: number): Promise<number[]> {
  const file = new Uint8Array(await readFile(join(dir, 'ram.bin')));
  return Array.from({ length: pages }, (_, p) => (p * PS < file.length ? file[p * PS + 100]! : 0));
}

describe('a decoder stopped mid-chunk does not leave views of the chunk in the store', () => {
  it('XbzrleDecodeStream destroyed while paused on a full reader', async () => {
    const input = stream(16);
    const store = new FilePageStore({ dir, cacheSize: 64 * PS });
    const dec = new XbzrleDecodeStream({ store, readableHighWaterMark: 4 }); // emitPages: nobody reads
    dec.on('error', () => undefined);
    const written = new Promise<unknown>((resolve) => dec.write(input, (err) => resolve(err)));
    await new Promise((r) => setTimeout(r, 20)); // paused after 4 pages (pages 1..3 borrowed)
    dec.destroy(new Error('consumer gone'));
    expect(await written).toBeInstanceOf(Error);
    input.fill(0xa5); // the write settled: the chunk is the writer's again
    await store.finish(); // keep what was decoded
    const got = await pageBytes(16);
    expect(got.filter((b) => b === 0xa5)).toEqual([]);
  });

  it('Web XbzrleDecoderStream: reader cancelled while a write waits', async () => {
    const input = stream(16);
    const store = new FilePageStore({ dir, cacheSize: 64 * PS });
    const dec = new XbzrleDecoderStream({ store });
    const writer = dec.writable.getWriter();
    const reader = dec.readable.getReader();
    const written = writer.write(input).then(
      () => null,
      (e: unknown) => e,
    );
    for (let i = 0; i < 4; i++) await reader.read(); // pages 1..3 borrowed
    await reader.cancel(new Error('consumer gone'));
    expect(await written).toBeInstanceOf(Error);
    input.fill(0xa5);
    await store.finish();
    const got = await pageBytes(16);
    expect(got.filter((b) => b === 0xa5)).toEqual([]);
  });

  it('decodeRecords: the consumer breaks; the source reuses its buffer when returned', async () => {
    const input = stream(16);
    const store = new FilePageStore({ dir, cacheSize: 64 * PS });
    const buf = new Uint8Array(input.length);
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        buf.set(input);
        yield buf;
      } finally {
        buf.fill(0xa5); // returned: its buffer goes back to a pool, say
      }
    }
    let n = 0;
    for await (const _ of decodeRecords(source(), { store })) if (++n === 4) break; // pages 1..3 borrowed
    await store.finish();
    const got = await pageBytes(16);
    expect(got.filter((b) => b === 0xa5)).toEqual([]);
  });
});
