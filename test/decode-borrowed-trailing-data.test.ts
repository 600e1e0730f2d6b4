/**
 * with allowTrailingData, a framing error right after an EOS turns the rest of
 * the input into trailing bytes, and DecoderCore.next() returns undefined from its
 * `if (this.trailing)` branch WITHOUT releasing the pages the store borrowed from the
 * chunk. The driver then reuses the chunk; the pages are written at finish() from it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeRecords, FilePageStore, XbzrleDecodeStream } from '../lib/index.js';
import { buildRecords } from './helpers/streams.js';
import { tempDirEach } from './helpers/temp-dir.js';

const PS = 4096;
let dir = '';
tempDirEach('xbzrle-borrow-', (d) => (dir = d));

/** MEM_SIZE, PAGE 0..7 (page p filled with p + 1), EOS, then 8 bytes that do not parse. */
function streamWithTrailing(): Uint8Array {
  const body = buildRecords((w) => {
    w.memSize([{ id: 'ram', length: 8 * PS }]);
    for (let p = 0; p < 8; p++) w.page('ram', p * PS, new Uint8Array(PS).fill(p + 1), 0);
    w.eos();
  });
  const out = new Uint8Array(body.length + 8);
  out.set(body);
  out.set([0, 0, 0, 0, 0, 0, 0, 0x80], body.length); // a record with an unknown flag: trailing data
  return out;
}

describe('allowTrailingData releases the borrowed pages before giving the chunk back', () => {
  it('XbzrleDecodeStream: chunk scribbled after its write callback', async () => {
    const input = streamWithTrailing();
    const store = new FilePageStore({ dir, cacheSize: 16 * PS });
    const dec = new XbzrleDecodeStream({ store, emitPages: false, allowTrailingData: true });
    dec.resume();
    await new Promise<void>((resolve, reject) => dec.write(input, (err) => (err ? reject(err) : resolve())));
    input.fill(0xa5); // the decoder gave the chunk back
    await new Promise<void>((resolve, reject) => {
      dec.on('error', reject);
      dec.end(resolve);
    });
    expect(dec.trailingBytes).toBe(8);
    const file = new Uint8Array(await readFile(join(dir, 'ram.bin')));
    expect(Array.from({ length: 8 }, (_, p) => file[p * PS + 100])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('decodeRecords: a source that reuses its buffer for the next chunk', async () => {
    const input = streamWithTrailing();
    const store = new FilePageStore({ dir, cacheSize: 16 * PS });
    const buf = new Uint8Array(input.length);
    function* source(): Generator<Uint8Array> {
      buf.set(input);
      yield buf;
      buf.fill(0xa5); // resumed: the decoder used the chunk up
      yield buf.subarray(0, 16); // more trailing bytes
    }
    for await (const _ of decodeRecords(source(), { store, allowTrailingData: true })) void _;
    const file = new Uint8Array(await readFile(join(dir, 'ram.bin')));
    expect(Array.from({ length: 8 }, (_, p) => file[p * PS + 100])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
