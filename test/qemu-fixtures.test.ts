import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { decodeXbzrle, encodeXbzrle, MemoryPageStore, RamRecordParser, XbzrleDecodeStream, type DecodedPage } from '../lib/index.js';
import { sameBytes, split } from './helpers/bytes.js';
import { findRamSections, loadFixture, PC_BLOCKS, ramStream } from './helpers/qemu-file.js';

const captures = [
  { name: 'sparse-c32m', PAGE: 8317, ZERO: 8214, XBZRLE: 60404, EOS: 23, sections: { start: 1, part: 21, end: 1 } },
  { name: 'mixed-c8m', PAGE: 8032, ZERO: 14536, XBZRLE: 6081, EOS: 18, sections: { start: 1, part: 16, end: 1 } },
] as const;

const BLOCKS = PC_BLOCKS;

describe.each(captures)('real QEMU 7.2 stream $name', (cap) => {
  const { mig, ram, query } = loadFixture(cap.name);
  const found = findRamSections(mig);
  const records = ramStream(mig, found);

  it('has the documented container layout', () => {
    expect(found.machine).toBe('pc-i440fx-7.2');
    expect(found.sections).toEqual(cap.sections);
    expect(mig[found.stoppedAt]).toBe(0x04); // the first device FULL section
  });

  it.each(['whole', 'random'] as const)('decodes through XbzrleDecodeStream (%s chunks) to the ground-truth pc.ram and QEMU counters', async (how) => {
    const store = new MemoryPageStore();
    const dec = new XbzrleDecodeStream({ store });
    const kinds = { page: 0, zero: 0, xbzrle: 0 };
    await pipeline(
      Readable.from(split(records, how, 99, 256 * 1024)),
      dec,
      new Writable({
        objectMode: true,
        write(p: DecodedPage, _e, cb) {
          kinds[p.kind]++;
          cb();
        },
      }),
    );
    const pcRam = store.read('pc.ram');
    expect(pcRam.length).toBe(ram.length);
    expect(sameBytes(pcRam, ram)).toBe(true);
    expect(createHash('sha256').update(pcRam).digest('hex')).toBe(query['pc.ram-sha256']);
    expect(dec.blocks).toEqual(BLOCKS.map(([id, length]) => ({ id, length })));
    expect(kinds).toEqual({ page: cap.PAGE, zero: cap.ZERO, xbzrle: cap.XBZRLE });
    const json = dec.stats.toJSON();
    expect(json.ram.normal).toBe(query['query-migrate'].ram.normal);
    expect(json.ram.duplicate).toBe(query['query-migrate'].ram.duplicate);
    expect(json.ram['normal-bytes']).toBe(query['query-migrate'].ram['normal-bytes']);
    expect(json.records).toEqual({ PAGE: cap.PAGE, ZERO: cap.ZERO, XBZRLE: cap.XBZRLE, MEM_SIZE: 1, EOS: cap.EOS });
    expect(json.ram.transferred).toBe(records.length);
    // xbzrle-cache.bytes = Σ(XBZRLE record length − 8) + 4096 × overflow (spec §9.2).
    const xq = query['query-migrate']['xbzrle-cache'];
    expect(json['xbzrle-cache'].bytes + 4096 * xq.overflow).toBe(xq.bytes);
  });

  it('re-encoding every XBZRLE record from the page before and after it reproduces the stream bytes', () => {
    const parser = new RamRecordParser({ pageSize: 4096 });
    const store = new MemoryPageStore();
    const before = new Uint8Array(4096);
    const out = new Uint8Array(4096);
    parser.push(records);
    let checked = 0;
    for (let rec = parser.next(); rec !== null; rec = parser.next()) {
      if (rec.kind === 'page') store.put(rec.block, rec.offset, rec.src.subarray(rec.srcOffset, rec.srcOffset + 4096));
      else if (rec.kind === 'zero') store.fill(rec.block, rec.offset, 4096, rec.fill);
      else if (rec.kind === 'xbzrle') {
        const delta = rec.src.subarray(rec.srcOffset, rec.srcOffset + rec.length);
        const page = store.view(rec.block, rec.offset, 4096);
        before.set(page);
        decodeXbzrle(delta, page);
        const n = encodeXbzrle(before, page, out);
        if (n !== delta.length || !sameBytes(out.subarray(0, n), delta)) {
          throw new Error(`XBZRLE record at byte ${rec.position} re-encodes differently`);
        }
        checked++;
      }
    }
    parser.end();
    expect(checked).toBe(cap.XBZRLE);
  });
});
