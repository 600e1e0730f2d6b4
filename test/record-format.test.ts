import { describe, expect, it } from 'vitest';
import { ENCODING_FLAG_XBZRLE, RAM_SAVE_FLAG, RamRecordParser, RecordWriter, type RamRecord } from '../lib/index.js';
import { concat, hex, toHex } from './helpers/bytes.js';

function write(fn: (w: RecordWriter) => void, chunkSize = 64 * 1024): { bytes: Uint8Array; chunks: Uint8Array[] } {
  const chunks: Uint8Array[] = [];
  const w = new RecordWriter({ pageSize: 4096, chunkSize }, (c) => chunks.push(c));
  fn(w);
  w.flush();
  return { bytes: concat(chunks), chunks };
}

function parseAll(bytes: Uint8Array, pageSize = 4096): Omit<RamRecord, 'src'>[] {
  const p = new RamRecordParser({ pageSize });
  p.push(bytes);
  const out: Omit<RamRecord, 'src'>[] = [];
  for (let r = p.next(); r !== null; r = p.next()) {
    const { src: _src, ...rest } = r;
    out.push({ ...rest, blocks: [...r.blocks] });
  }
  p.end();
  return out;
}

describe('RAM_SAVE_FLAG constants', () => {
  it('has QEMU values', () => {
    expect(RAM_SAVE_FLAG).toMatchObject({ ZERO: 0x02, COMPRESS: 0x02, MEM_SIZE: 0x04, PAGE: 0x08, EOS: 0x10, CONTINUE: 0x20, XBZRLE: 0x40 });
    expect(ENCODING_FLAG_XBZRLE).toBe(0x01);
  });
});

describe('RecordWriter byte layout', () => {
  it('writes the block name once, then CONTINUE records without it', () => {
    const { bytes } = write((w) => {
      w.zero('pc.ram', 0x3000, 0);
      w.zero('pc.ram', 0x4000, 0);
    });
    expect(toHex(bytes)).toBe(
      '0000000000003002' + '06' + Buffer.from('pc.ram').toString('hex') + '00' + // named ZERO
        '0000000000004022' + '00', // ZERO|CONTINUE
    );
  });

  it('writes XBZRLE as header, encoding byte 0x01, be16 length, delta (the spec example)', () => {
    const delta = hex('a8 04 04 ad b8 7f 17');
    const { bytes } = write((w) => {
      w.zero('pc.ram', 0, 0);
      w.xbzrle('pc.ram', 0x11000, delta, 0, delta.length);
    });
    expect(toHex(bytes.subarray(16))).toBe('0000000000011060' + '01' + '0007' + 'a80404adb87f17');
  });

  it('copies each XBZRLE delta as it is at the call, whatever array, offset and length (reused views stay exact)', () => {
    const area = new Uint8Array(64);
    const other = new Uint8Array(64).fill(0xee);
    const big = new Uint8Array(3000).map((_, i) => i & 0xff);
    const want: string[] = [];
    const { bytes } = write((w) => {
      const put = (d: Uint8Array, at: number, len: number) => {
        w.xbzrle('ram', 0, d, at, len);
        want.push('0000000000000060'.replace(/60$/, want.length === 0 ? '40' : '60') + (want.length === 0 ? '0372616d' : '') + '01' + len.toString(16).padStart(4, '0') + toHex(d.subarray(at, at + len)));
      };
      const fill = (k: number) => area.forEach((_, i) => (area[i] = k * 16 + i));
      fill(1);
      put(area, 8, 5);
      fill(2); // same array, offset and length: the bytes of now
      put(area, 8, 5);
      put(area, 8, 7); // another length
      put(area, 9, 5); // another offset
      put(other, 8, 5); // another array
      put(big, 10, 2500); // longer than the kept views
      fill(3);
      put(area, 8, 5);
    });
    expect(toHex(bytes)).toBe(want.join(''));
  });

  it('writes PAGE with the raw page, MEM_SIZE with the total and the block list, EOS as a bare 0x10', () => {
    const page = new Uint8Array(4096).fill(0xab);
    const { bytes } = write((w) => {
      w.memSize([
        { id: 'a', length: 0x2000 },
        { id: 'bb', length: 0x1000 },
      ]);
      w.page('a', 0x1000, page, 0);
      w.eos();
    });
    const memSize = '0000000000003004' + '01' + '61' + '0000000000002000' + '02' + '6262' + '0000000000001000';
    expect(toHex(bytes.subarray(0, 29))).toBe(memSize);
    expect(toHex(bytes.subarray(29, 29 + 10))).toBe('0000000000001008' + '0161');
    expect(bytes.subarray(39, 39 + 4096).every((v) => v === 0xab)).toBe(true);
    expect(toHex(bytes.subarray(39 + 4096))).toBe('0000000000000010');
  });

  it('switches names when the block changes', () => {
    const recs = parseAll(
      write((w) => {
        w.zero('a', 0, 0);
        w.zero('b', 0, 0);
        w.zero('b', 4096, 0);
        w.zero('a', 4096, 0);
        w.eos();
      }).bytes,
    );
    expect(recs.slice(0, 4).map((r) => [r.block, r.flags & RAM_SAVE_FLAG.CONTINUE])).toEqual([
      ['a', 0],
      ['b', 0],
      ['b', 0x20],
      ['a', 0],
    ]);
    expect(recs[4]!.kind).toBe('eos');
  });

  it('emits chunks of at least chunkSize bytes, and only the last one smaller', () => {
    const page = new Uint8Array(4096).fill(1);
    const { chunks } = write((w) => {
      for (let i = 0; i < 1000; i++) w.page('ram', i * 4096, page, 0);
    });
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks.slice(0, -1)) expect(c.length).toBeGreaterThanOrEqual(64 * 1024);
  });

  it('refuses block names that are empty or longer than 255 bytes', () => {
    expect(() => write((w) => w.zero('', 0))).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_RECORD' }));
    expect(() => write((w) => w.zero('x'.repeat(256), 0))).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_RECORD' }));
  });
});

describe('RamRecordParser', () => {
  it('parses what the writer writes, with stream positions', () => {
    const delta = hex('05 01 aa');
    const { bytes } = write((w) => {
      w.memSize([{ id: 'ram', length: 0x10000 }]);
      w.eos();
      w.page('ram', 0, new Uint8Array(4096), 0);
      w.xbzrle('ram', 0, delta, 0, 3);
      w.zero('ram', 0x2000, 7);
      w.eos();
    });
    const recs = parseAll(bytes);
    expect(recs.map((r) => r.kind)).toEqual(['mem_size', 'eos', 'page', 'xbzrle', 'zero', 'eos']);
    expect(recs[0]!.blocks).toEqual([{ id: 'ram', length: 0x10000 }]);
    expect(recs[0]!.offset).toBe(0x10000);
    expect(recs[2]!.position).toBe(recs[0]!.size + 8);
    expect(recs[3]).toMatchObject({ block: 'ram', offset: 0, length: 3, size: 8 + 3 + 3 });
    expect(recs[4]).toMatchObject({ fill: 7, offset: 0x2000 });
    let pos = 0;
    for (const r of recs) {
      expect(r.position).toBe(pos);
      pos += r.size;
    }
    expect(pos).toBe(bytes.length);
  });

  it('gives the same records for every split of the input, down to single bytes', () => {
    const { bytes } = write((w) => {
      w.memSize([{ id: 'ram', length: 0x100000 }, { id: 'rom', length: 0x1000 }]);
      for (let i = 0; i < 20; i++) {
        w.page('ram', i * 4096, new Uint8Array(4096).fill(i), 0);
        w.xbzrle('rom', 0, hex('00 02 01 02'), 0, 4);
        w.zero('ram', i * 4096, 0);
      }
      w.eos();
    });
    const whole = parseAll(bytes);
    const p = new RamRecordParser({ pageSize: 4096 });
    const got: string[] = [];
    for (let i = 0; i < bytes.length; i++) {
      p.push(bytes.subarray(i, i + 1));
      for (let r = p.next(); r !== null; r = p.next()) {
        got.push(`${r.kind}:${r.block}:${r.offset}:${r.position}:${toHex(r.src.subarray(r.srcOffset, r.srcOffset + Math.min(r.length, 8)))}`);
      }
    }
    p.end();
    expect(got).toEqual(whole.map((r) => `${r.kind}:${r.block}:${r.offset}:${r.position}:${toHex(bytes.subarray(r.srcOffset, r.srcOffset + Math.min(r.length, 8)))}`));
  });

  it('accepts MEM_SIZE|CONTINUE and EOS|CONTINUE (CONTINUE is masked before the dispatch)', () => {
    const recs = parseAll(hex('0000000000001024 03 72616d 0000000000001000  0000000000000030'));
    expect(recs.map((r) => r.kind)).toEqual(['mem_size', 'eos']);
  });

  it('accepts a MEM_SIZE with total 0 (an empty list)', () => {
    expect(parseAll(hex('0000000000000004 0000000000000010')).map((r) => r.kind)).toEqual(['mem_size', 'eos']);
  });

  it('uses page-size-dependent flag masks (1 KiB pages)', () => {
    const p = new RamRecordParser({ pageSize: 1024 });
    p.push(hex('0000000000000410')); // offset 0x400 | EOS
    expect(p.next()?.kind).toBe('eos');
  });
});

describe('RecordWriter and RamRecordParser helpers', () => {
  it('pending counts the bytes written and not yet handed out; resetContinue makes the next record name its block again', () => {
    const chunks: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: 4096, chunkSize: 64 * 1024 }, (c) => chunks.push(c));
    expect(w.pending).toBe(0);
    w.zero('pc.ram', 0, 0);
    expect(w.pending).toBe(8 + 1 + 6 + 1);
    w.zero('pc.ram', 0x1000, 0);
    expect(w.pending).toBe(16 + 8 + 1); // CONTINUE: no name
    w.resetContinue();
    w.zero('pc.ram', 0x2000, 0);
    expect(w.pending).toBe(25 + 8 + 1 + 6 + 1); // named again
    w.flush();
    expect(w.pending).toBe(0);
    expect(toHex(concat(chunks)).slice(-32)).toBe('0000000000002002' + '06' + Buffer.from('pc.ram').toString('hex') + '00');
  });

  it('currentBlock is the block a CONTINUE record refers to', () => {
    const { bytes } = write((w) => {
      w.zero('a', 0, 0);
      w.zero('b', 0, 0);
      w.zero('b', 0x1000, 0);
    });
    const p = new RamRecordParser({ pageSize: 4096 });
    expect(p.currentBlock).toBeNull();
    p.push(bytes);
    const seen: (string | null)[] = [];
    for (let r = p.next(); r !== null; r = p.next()) seen.push(p.currentBlock);
    expect(seen).toEqual(['a', 'b', 'b']);
  });
});
