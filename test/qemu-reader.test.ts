import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MemoryPageStore, readQemuMigration, RecordWriter, XbzrleError, type RamBlock } from '../lib/index.js';
import { concat, hex, split } from './helpers/bytes.js';
import { loadFixture } from './helpers/qemu-file.js';

const u32 = (v: number): string => v.toString(16).padStart(8, '0');
const u16 = (v: number): string => v.toString(16).padStart(4, '0');
const str8 = (s: string): string => s.length.toString(16).padStart(2, '0') + Buffer.from(s).toString('hex');
const HEADER = '5145564d 00000003';
const config = (machine: string, subsections = ''): string => `07 ${u32(machine.length)} ${Buffer.from(machine).toString('hex')} ${subsections}`;
const subsection = (name: string, body: string): string => `05 ${str8(name)} 00000001 ${body}`;
const start = (id: number, name = 'ram', version = 4): string => `01 ${u32(id)} ${str8(name)} 00000000 ${u32(version)}`;
const footer = (id: number): string => `7e ${u32(id)}`;

function records(fn: (w: RecordWriter) => void, pageSize = 4096): string {
  const chunks: Uint8Array[] = [];
  const w = new RecordWriter({ pageSize }, (c) => chunks.push(c));
  fn(w);
  w.flush();
  return Buffer.from(concat(chunks)).toString('hex');
}

const BLOCKS: RamBlock[] = [{ id: 'ram', length: 4 * 4096 }];
const memSize = records((w) => {
  w.memSize(BLOCKS);
  w.eos();
});
const part = records((w) => {
  w.page('ram', 4096, new Uint8Array(4096).fill(3), 0);
  w.eos();
});
const end = records((w) => {
  w.xbzrle('ram', 4096, hex('00 01 09'), 0, 3);
  w.eos();
});

/** A small complete stream: header, configuration, ram START/PART/END, one device FULL section, EOF. */
function stream(opts: { subsections?: string; between?: string } = {}): Uint8Array {
  return hex(
    [
      HEADER,
      config('pc-test', opts.subsections ?? ''),
      start(2),
      memSize,
      footer(2),
      opts.between ?? '',
      `02 ${u32(2)}`,
      part,
      footer(2),
      `03 ${u32(2)}`,
      end,
      footer(2),
      `04 ${u32(0)} ${str8('timer')} 00000000 00000002 0011223344`,
      '00',
    ].join(' '),
  );
}

async function fails(input: Uint8Array, code: string): Promise<XbzrleError> {
  const err = await readQemuMigration(input).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(XbzrleError);
  expect((err as XbzrleError).code).toBe(code);
  return err as XbzrleError;
}

describe('readQemuMigration on real QEMU 7.2 files', () => {
  it.each(['sparse-c32m', 'mixed-c8m'])('%s: rebuilds pc.ram, reports the container and QEMU’s counters', async (name) => {
    const { mig, ram, query } = loadFixture(name);
    const dir = await mkdtemp(join(tmpdir(), 'xbzrle-qr-'));
    try {
      const path = join(dir, 'vm.mig');
      await writeFile(path, mig);
      const inputs = [path, Readable.from(split(mig, 'random', 7, 100_000)), mig];
      for (const input of inputs) {
        const store = new MemoryPageStore();
        const info = await readQemuMigration(input, { store });
        expect(info.machine).toBe('pc-i440fx-7.2');
        expect(info.version).toBe(3);
        expect(info.pageSize).toBe(4096);
        expect(info.ramComplete).toBe(true);
        expect(info.stoppedAt).toMatchObject({ reason: 'section', type: 'FULL', idstr: 'timer' });
        expect(info.blocks.map((b) => b.id)).toContain('0000:00:02.0/vga.vram');
        const q = query['query-migrate'];
        const s = info.stats.toJSON();
        expect(s.ram.normal).toBe(q.ram.normal);
        expect(s.ram.duplicate).toBe(q.ram.duplicate);
        expect(s.ram.transferred).toBe(q.ram.transferred);
        expect(s['xbzrle-cache'].bytes + 4096 * q['xbzrle-cache'].overflow).toBe(q['xbzrle-cache'].bytes);
        expect(createHash('sha256').update(store.read('pc.ram')).digest('hex')).toBe(query['pc.ram-sha256']);
        expect(ram.length).toBe(32 << 20);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts and validates without a store (store: null)', async () => {
    const { mig } = loadFixture('sparse-c32m');
    const info = await readQemuMigration(mig, { store: null });
    expect(info.stats.records).toEqual({ PAGE: 8317, ZERO: 8214, XBZRLE: 60404, MEM_SIZE: 1, EOS: 23 });
    expect(info.store).toBeNull();
  });
});

describe('readQemuMigration container rules', () => {
  it('reads a synthetic stream split anywhere, with CONTINUE carried across sections', async () => {
    const bytes = stream();
    for (const how of ['whole', 'bytes', 'random'] as const) {
      const store = new MemoryPageStore();
      const info = await readQemuMigration(Readable.from(split(bytes, how, 3, 40)), { store });
      expect(info.sections).toEqual({ start: 1, part: 1, end: 1 });
      expect(info.ramComplete).toBe(true);
      expect(info.stoppedAt.idstr).toBe('timer');
      const page = store.read('ram').subarray(4096, 8192);
      expect(page[0]).toBe(9);
      expect(page[1]).toBe(3);
    }
  });

  it('rejects non-QEMU input with ERR_QEMU_BAD_MAGIC and other versions with ERR_QEMU_VERSION', async () => {
    await fails(hex('00000000000000100000'), 'ERR_QEMU_BAD_MAGIC');
    await fails(new Uint8Array(0), 'ERR_QEMU_BAD_MAGIC');
    await fails(hex('5145564d 00000002'), 'ERR_QEMU_VERSION');
  });

  it('reports truncation inside the container and inside a ram section', async () => {
    const bytes = stream();
    await fails(bytes.subarray(0, 10), 'ERR_QEMU_TRUNCATED');
    const e = await readQemuMigration(bytes.subarray(0, 60)).catch((err: XbzrleError) => err);
    expect(['ERR_RAM_TRUNCATED', 'ERR_QEMU_TRUNCATED']).toContain((e as XbzrleError).code);
  });

  it('a stream with section footers that ends where the next footer is due is truncated; one without footers may end there', async () => {
    const withFooters = hex([HEADER, config('m'), start(2), memSize, footer(2), `02 ${u32(2)}`, part, footer(2), `03 ${u32(2)}`, end].join(' '));
    const err = await fails(withFooters, 'ERR_QEMU_TRUNCATED');
    expect(err.offset).toBe(withFooters.length);
    const noFooters = hex([HEADER, config('m'), start(2), memSize, `02 ${u32(2)}`, part, `03 ${u32(2)}`, end].join(' '));
    const info = await readQemuMigration(noFooters);
    expect(info.ramComplete).toBe(true);
    expect(info.stoppedAt).toEqual({ offset: noFooters.length, reason: 'end-of-input' });
  });

  it('stops cleanly at the EOF marker and at sections of other live handlers', async () => {
    const eofOnly = hex([HEADER, config('m'), start(2), memSize, footer(2), '00'].join(' '));
    const info = await readQemuMigration(eofOnly);
    expect(info.stoppedAt.reason).toBe('eof');
    expect(info.ramComplete).toBe(false);
    const other = hex([HEADER, config('m'), start(2), memSize, footer(2), `02 ${u32(7)} 0000`].join(' '));
    const info2 = await readQemuMigration(other);
    expect(info2.stoppedAt).toMatchObject({ reason: 'section', type: 'PART', sectionId: 7 });
  });

  it('skips COMMAND records by their length', async () => {
    const info = await readQemuMigration(stream({ between: `08 ${u16(11)} ${u16(3)} aabbcc` }));
    expect(info.commands).toEqual({ 11: 1 });
    expect(info.ramComplete).toBe(true);
  });

  it('reads configuration subsections: target page bits, capabilities, uuid', async () => {
    const subs = subsection('configuration/target-page-bits', u32(12)) + ' ' + subsection('configuration/uuid', '00112233445566778899aabbccddeeff');
    const info = await readQemuMigration(stream({ subsections: subs }));
    expect(info.uuid).toBe('00112233445566778899aabbccddeeff');
    expect(info.pageSize).toBe(4096);
    // mapped-ram is read now (test/qemu-mapped-ram.test.ts): a record-stream MEM_SIZE list has no mapped-ram headers
    // (the bytes after the entry, read as one, give a page size that is not the stream's).
    await expect(readQemuMigration(stream({ subsections: subsection('configuration/capabilities', `${u32(1)} ${str8('mapped-ram')}`) }))).rejects.toMatchObject({
      code: 'ERR_QEMU_CORRUPT',
    });
    await expect(readQemuMigration(stream({ subsections: subsection('configuration/frobnicate', '') }))).rejects.toMatchObject({ code: 'ERR_QEMU_UNSUPPORTED' });
  });

  it('refuses absurd configuration fields at their offset: page bits out of range, a 2 GiB machine type, 2^32 capabilities', async () => {
    const bits = await fails(stream({ subsections: subsection('configuration/target-page-bits', u32(2)) }), 'ERR_QEMU_UNSUPPORTED');
    expect(bits.offset).toBe(8 + 5 + 'pc-test'.length); // the subsection
    const huge = hex(`${HEADER} 07 7ffffff0 ${Buffer.from('pc').toString('hex')}`);
    expect((await fails(huge, 'ERR_QEMU_CORRUPT')).offset).toBe(9);
    const caps = await fails(stream({ subsections: subsection('configuration/capabilities', u32(0xffffffff)) }), 'ERR_QEMU_CORRUPT');
    expect(caps.message).toMatch(/4294967295 migration capabilities/);
  });

  it('reads a long field delivered one byte at a time (60 KB COMMAND payload, chunks joined when complete)', async () => {
    const payload = 'ab'.repeat(60000);
    const input = stream({ between: `08 0001 ${u16(60000)} ${payload}` });
    const info = await readQemuMigration(Readable.from(split(input, 'bytes')));
    expect(info.commands).toEqual({ 1: 1 });
    expect(info.ramComplete).toBe(true);
    // Cut inside the payload: truncated, at the record's offset, with every byte it got counted.
    const cut = input.subarray(0, input.length - 200 - 60000 + 1000);
    const err = await readQemuMigration(Readable.from(split(cut, 'bytes', 3, 1))).then(() => undefined, (e: unknown) => e);
    expect((err as XbzrleError).code).toBe('ERR_QEMU_TRUNCATED');
  });

  it('parses x-ignore-shared addresses in MEM_SIZE', async () => {
    const caps = subsection('configuration/capabilities', `${u32(1)} ${str8('x-ignore-shared')}`);
    const mem = `0000000000002004 ${str8('a')} 0000000000001000 00000000fd000000 ${str8('b')} 0000000000001000 0000000000000000 0000000000000010`;
    const bytes = hex([HEADER, config('m', caps), start(2), mem, footer(2), '00'].join(' '));
    const info = await readQemuMigration(bytes);
    expect(info.capabilities).toEqual(['x-ignore-shared']);
    expect(info.blocks).toEqual([
      { id: 'a', length: 4096, address: 0xfd000000 },
      { id: 'b', length: 4096, address: 0 },
    ]);
  });

  it('parses postcopy page sizes in MEM_SIZE after a POSTCOPY_ADVISE command, wherever they are', async () => {
    const advise = `08 ${u16(3)} ${u16(16)} ${'00'.repeat(16)}`;
    const mem = `0000000000203004 ${str8('huge')} 0000000000200000 0000000000200000 ${str8('a')} 0000000000001000 ${str8('last')} 0000000000002000 0000000000200000 0000000000000010`;
    const bytes = hex([HEADER, config('m'), advise, start(2), mem, footer(2), '00'].join(' '));
    const info = await readQemuMigration(bytes);
    expect(info.blocks).toEqual([
      { id: 'huge', length: 0x200000, pageSize: 0x200000 },
      { id: 'a', length: 0x1000 },
      { id: 'last', length: 0x2000, pageSize: 0x200000 },
    ]);
  });

  it('rejects a ram section version other than 4, an unknown item type and a wrong footer', async () => {
    await fails(hex([HEADER, config('m'), start(2, 'ram', 5), memSize].join(' ')), 'ERR_QEMU_UNSUPPORTED');
    await fails(hex([HEADER, config('m'), '42'].join(' ')), 'ERR_QEMU_CORRUPT');
    await fails(hex([HEADER, config('m'), start(2), memSize, footer(3)].join(' ')), 'ERR_QEMU_CORRUPT');
  });

  it('applies the RAM loader checks inside sections (errors carry file offsets)', async () => {
    const bad = hex([HEADER, config('m'), start(2), '0000000000000022 00'].join(' '));
    const err = await fails(bad, 'ERR_RAM_NO_BLOCK');
    expect(err.offset).toBe(8 + 5 + 1 + 17);
  });
});
