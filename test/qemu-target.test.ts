// "Will QEMU load this?" (issue 16 part 4): checks against a target block table, and the
// non-page-multiple MEM_SIZE rule shared by MemoryPageStore and FilePageStore.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilePageStore, MemoryPageStore, readQemuMigration, RecordWriter, XbzrleDecodeStream, XbzrleError, type PageStore, type RamBlock, type TargetBlock } from '../lib/index.js';
import { XbzrleDecoderStream } from '../lib/web/index.js';
import { concat } from './helpers/bytes.js';
import { loadFixture, PC_BLOCKS } from './helpers/qemu-file.js';
import { buildRecords, decodeChunks } from './helpers/streams.js';

const PS = 4096;

const records = (fn: (w: RecordWriter) => void): Buffer => Buffer.from(buildRecords(fn, PS));

async function decode(bytes: Uint8Array, opts: { target?: readonly TargetBlock[]; store?: PageStore } = {}): Promise<XbzrleDecodeStream> {
  return (await decodeChunks([bytes], { emitPages: false, ...opts })).dec;
}

async function refused(bytes: Uint8Array, target: readonly TargetBlock[], code: string): Promise<XbzrleError> {
  const err = await decode(bytes, { target }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(XbzrleError);
  expect((err as XbzrleError).code, (err as Error).message).toBe(code);
  return err as XbzrleError;
}

const PC: TargetBlock[] = [
  { id: 'pc.ram', length: 0x2000000 },
  { id: 'pc.bios', length: 0x40000 },
  { id: '/rom@etc/acpi/tables', length: 0x20000, maxLength: 0x200000 },
];

/** A MEM_SIZE entry by hand (RecordWriter refuses lengths that are not page multiples). */
const entry = (id: string, length: number): Buffer => Buffer.concat([Buffer.from([id.length]), Buffer.from(id), Buffer.from(length.toString(16).padStart(16, '0'), 'hex')]);
const memSizeOf = (total: number, ...entries: Buffer[]): Buffer => Buffer.concat([Buffer.from((total + 4).toString(16).padStart(16, '0'), 'hex'), ...entries]);
const EOS = Buffer.from('0000000000000010', 'hex');

const stream = (blocks: RamBlock[], body: (w: RecordWriter) => void = () => {}): Buffer =>
  records((w) => {
    if (blocks.length > 0) w.memSize(blocks);
    body(w);
    w.eos();
  });

describe('checks against a target machine (QEMU’s loader rules and messages)', () => {
  it('a MEM_SIZE that changes a fixed-size block: Size mismatch, at the entry', async () => {
    const bytes = stream([{ id: 'pc.ram', length: 0x2000000 }, { id: 'pc.bios', length: 0x80000 }]);
    const err = await refused(bytes, PC, 'ERR_RAM_SIZE_MISMATCH');
    expect(err.message).toContain('Size mismatch: pc.bios: 0x80000 != 0x40000');
    expect(err.offset).toBe(8 + 1 + 6 + 8); // the second entry
    await decode(bytes); // without a target nothing says it is wrong
  });

  it('a MEM_SIZE entry for a block the target lacks: Unknown ramblock', async () => {
    const err = await refused(stream([{ id: 'vga.vram', length: 0x1000000 }]), PC, 'ERR_RAM_UNKNOWN_BLOCK');
    expect(err.message).toContain('Unknown ramblock "vga.vram", cannot accept migration');
    expect(err.offset).toBe(8);
  });

  it('a resizeable block: grows up to maxLength, not past it (Size too large); pages then fit the new length', async () => {
    const grown = stream([{ id: '/rom@etc/acpi/tables', length: 0x40000 }], (w) => w.page('/rom@etc/acpi/tables', 0x3f000, new Uint8Array(PS).fill(1), 0));
    const dec = await decode(grown, { target: PC });
    expect(dec.stats.records.PAGE).toBe(1);
    const err = await refused(stream([{ id: '/rom@etc/acpi/tables', length: 0x400000 }]), PC, 'ERR_RAM_SIZE_MISMATCH');
    expect(err.message).toContain('Size too large: /rom@etc/acpi/tables: 0x400000 > 0x200000');
    // resizeable: false wins over maxLength
    await refused(grown, [{ id: '/rom@etc/acpi/tables', length: 0x20000, maxLength: 0x200000, resizeable: false }], 'ERR_RAM_SIZE_MISMATCH');
  });

  it('with no MEM_SIZE: a page past the target block’s end (Illegal RAM offset), a page of a block it lacks (Can’t find block)', async () => {
    const past = stream([], (w) => w.page('pc.bios', 0x40000, new Uint8Array(PS), 0));
    const err = await refused(past, PC, 'ERR_RAM_OFFSET');
    expect(err.message).toContain('Illegal RAM offset 40000');
    expect(err.offset).toBe(0);
    await decode(past); // without a target: any offset goes (up to maxImageSize)
    const lacking = await refused(stream([], (w) => w.zero('pc.rom', 0)), PC, 'ERR_RAM_UNKNOWN_BLOCK');
    expect(lacking.message).toContain("Can't find block pc.rom");
  });

  it('a page of a target block the MEM_SIZE list left out is loaded, as QEMU loads it', async () => {
    const bytes = stream([{ id: 'pc.ram', length: 0x2000000 }], (w) => w.page('pc.bios', 0, new Uint8Array(PS).fill(2), 0));
    await refused(bytes, [], 'ERR_RAM_UNKNOWN_BLOCK');
    const dec = await decode(bytes, { target: PC });
    expect(dec.stats.records.PAGE).toBe(1);
    await expect(decode(bytes)).rejects.toMatchObject({ code: 'ERR_RAM_UNKNOWN_BLOCK' }); // standalone: the list is all it knows
  });

  it('a length that is not a page multiple rounds up to the target’s length, as qemu_ram_resize does', async () => {
    await decode(Buffer.concat([memSizeOf(0x60000, entry('pc.bios', 0x3f800), entry('/rom@etc/acpi/tables', 0x20800)), EOS]), { target: PC });
    const err = await refused(Buffer.concat([memSizeOf(0x60000, entry('pc.bios', 0x40800), entry('/rom@etc/acpi/tables', 0x1f800)), EOS]), PC, 'ERR_RAM_SIZE_MISMATCH');
    expect(err.message).toContain('Size mismatch: pc.bios: 0x41000 != 0x40000');
  });

  it('the Web decoder takes the same option', async () => {
    const bytes = stream([{ id: 'pc.bios', length: 0x80000 }]);
    const dec = new XbzrleDecoderStream({ target: PC });
    const reader = new Blob([bytes]).stream().pipeThrough(dec).getReader();
    const err = await reader.read().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_RAM_SIZE_MISMATCH' });
  });

  it('readQemuMigration: the real 7.2 capture against its own machine loads; against a smaller pc.bios it does not', async () => {
    const { mig } = loadFixture('sparse-c32m');
    const own: TargetBlock[] = PC_BLOCKS.map(([id, length]) => ({ id, length }));
    const info = await readQemuMigration(mig, { store: null, target: own });
    expect(info.ramComplete).toBe(true);
    const small = own.map((b) => (b.id === 'pc.bios' ? { ...b, length: 0x20000 } : b));
    await expect(readQemuMigration(mig, { store: null, target: small })).rejects.toMatchObject({
      code: 'ERR_RAM_SIZE_MISMATCH',
      message: expect.stringContaining('Size mismatch: pc.bios: 0x40000 != 0x20000'),
    });
  });

  it('a bad target table is an argument error', () => {
    for (const target of [{}, [{ id: '', length: 1 }], [{ id: 'a', length: -1 }], [{ id: 'a', length: 8, maxLength: 4 }], [{ id: 'a', length: 1 }, { id: 'a', length: 1 }]]) {
      expect(() => new XbzrleDecodeStream({ target: target as never }), JSON.stringify(target)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
  });
});

describe('a MEM_SIZE length that is not a page multiple: one image everywhere (QEMU loads the whole last page)', () => {
  // The MEM_SIZE total is a page multiple (its low bits are flags), the blocks in it need not be:
  // ram 0x1800 + rom 0x800 (the writer refuses such lengths, so the list is built by hand).
  const memSize = memSizeOf(0x2000, entry('ram', 0x1800), entry('rom', 0x800));
  const bytes = Buffer.concat([
    memSize,
    records((w) => {
      w.page('ram', 0, new Uint8Array(PS).fill(1), 0);
      w.page('ram', 0x1000, new Uint8Array(PS).fill(5), 0);
      w.eos();
    }),
  ]);

  it('MemoryPageStore.read() and a FilePageStore image (as the CLI writes it) are both 0x2000 bytes, last page whole', async () => {
    const mem = new MemoryPageStore();
    const dec = await decode(bytes, { store: mem });
    expect(dec.blocks).toEqual([
      { id: 'ram', length: 0x1800 },
      { id: 'rom', length: 0x800 },
    ]); // what the stream says
    const image = mem.read('ram');
    expect(image.length).toBe(0x2000);
    expect(image[0x1fff]).toBe(5);
    const dir = await mkdtemp(join(tmpdir(), 'xbzrle-pm-'));
    try {
      await decode(bytes, { store: new FilePageStore({ dir, fsync: false }) });
      const file = await readFile(join(dir, 'ram.bin'));
      expect(Buffer.compare(file, Buffer.from(image))).toBe(0);
      // Declared but never written: the rounded length too, in both stores.
      expect((await stat(join(dir, 'rom.bin'))).size).toBe(0x1000);
      expect(mem.read('rom')).toEqual(new Uint8Array(0x1000));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

