/**
 * A minimal QEMU migration-file walker for tests (spec: migration-file.md):
 * header, configuration section, then `ram` START/PART/END sections, stopping
 * at the first other section. RAM section bodies are delimited with a small
 * record-length scanner of its own (independent of the library's parser), and
 * returned as byte ranges so tests can feed the RAM records to the decoder.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipFile } from './fixtures.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/qemu-7.2/', import.meta.url));

/** The RAM blocks of the captured QEMU 7.2 `pc` machine, in MEM_SIZE order. */
export const PC_BLOCKS: [string, number][] = [
  ['pc.ram', 0x2000000],
  ['0000:00:02.0/vga.vram', 0x1000000],
  ['/rom@etc/acpi/tables', 0x20000],
  ['pc.bios', 0x40000],
  ['pc.rom', 0x20000],
  ['0000:00:02.0/vga.rom', 0x10000],
  ['/rom@etc/table-loader', 0x1000],
  ['/rom@etc/acpi/rsdp', 0x1000],
];

export interface RamSections {
  machine: string;
  /** Byte ranges [start, end) of RAM section bodies, in stream order. */
  bodies: [number, number][];
  sections: { start: number; part: number; end: number };
  /** Offset of the first section that is not `ram`. */
  stoppedAt: number;
}

export function loadFixture(name: string): { mig: Buffer; ram: Buffer; query: any } {
  return {
    mig: gunzipFile(FIXTURES + name + '.mig.gz'),
    ram: gunzipFile(FIXTURES + name + '.pc.ram.gz'),
    query: JSON.parse(readFileSync(FIXTURES + name + '.query.json', 'utf8')),
  };
}

export function findRamSections(b: Buffer, pageSize = 4096): RamSections {
  let p = 0;
  if (b.readUInt32BE(0) !== 0x5145564d || b.readUInt32BE(4) !== 3) throw new Error('not a QEMU v3 migration file');
  p = 8;
  if (b[p] !== 0x07) throw new Error('expected a configuration section');
  const nameLen = b.readUInt32BE(p + 1);
  const machine = b.toString('latin1', p + 5, p + 5 + nameLen);
  p += 5 + nameLen;
  if (b[p] === 0x05) throw new Error('configuration subsections are not handled by this test helper');
  let ramId = -1;
  const bodies: [number, number][] = [];
  const sections = { start: 0, part: 0, end: 0 };
  for (;;) {
    const type = b[p]!;
    if (type === 0x01 || type === 0x04) {
      const id = b.readUInt32BE(p + 1);
      const len = b[p + 5]!;
      const idstr = b.toString('latin1', p + 6, p + 6 + len);
      if (idstr !== 'ram' || type !== 0x01) break;
      ramId = id;
      sections.start++;
      p = p + 6 + len + 8;
    } else if (type === 0x02 || type === 0x03) {
      const id = b.readUInt32BE(p + 1);
      if (id !== ramId) break;
      if (type === 0x02) sections.part++;
      else sections.end++;
      p += 5;
    } else if (type === 0x08) {
      p += 5 + b.readUInt16BE(p + 3);
      continue;
    } else {
      break;
    }
    const start = p;
    p = skipRecords(b, p, pageSize);
    bodies.push([start, p]);
    if (b[p] !== 0x7e || b.readUInt32BE(p + 1) !== ramId) throw new Error(`missing section footer at ${p}`);
    p += 5;
  }
  return { machine, bodies, sections, stoppedAt: p };
}

/** Skips RAM records from `p` through the next EOS; returns the position after it. */
function skipRecords(b: Buffer, p: number, pageSize: number): number {
  for (;;) {
    const hi = b.readUInt32BE(p);
    const lo = b.readUInt32BE(p + 4);
    const flags = lo & (pageSize - 1);
    p += 8;
    if (flags & 0x04) {
      let total = hi * 2 ** 32 + (lo - flags);
      while (total > 0) {
        const len = b[p]!;
        total -= Number(b.readBigUInt64BE(p + 1 + len));
        p += 1 + len + 8;
      }
      continue;
    }
    if (flags & 0x10) return p;
    if (!(flags & 0x20)) p += 1 + b[p]!;
    if (flags & 0x02) p += 1;
    else if (flags & 0x08) p += pageSize;
    else if (flags & 0x40) p += 3 + b.readUInt16BE(p + 1);
    else throw new Error(`unexpected flags 0x${flags.toString(16)} at ${p - 8}`);
  }
}

/** The concatenated RAM section bodies: a complete RAM record stream ending with EOS. */
export function ramStream(b: Buffer, sections: RamSections): Buffer {
  return Buffer.concat(sections.bodies.map(([s, e]) => b.subarray(s, e)));
}

// ---- Synthetic QEMU files (appended for the mapped-ram, multifd and target tests) ----

/** A block of a synthetic mapped-ram file: the pages present, each filled with its byte. */
export interface MappedRamSpec {
  id: string;
  length: number;
  /** Page index → fill byte of the page stored in the file. */
  present: Map<number, number>;
  /** Extra bitmap bits to set (may be past the block's last page). */
  extraBits?: number[];
  /** Header fields to override. */
  version?: number;
  headerPageSize?: number;
  /** Put the bitmap at the very end of the file, after the page region (a layout QEMU never writes). */
  bitmapAfterPages?: boolean;
}

function be32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

function be64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}

function name8(s: string): Buffer {
  const n = Buffer.from(s);
  return Buffer.concat([Buffer.from([n.length]), n]);
}

/**
 * A mapped-ram migration file as QEMU ≥ 9.0 lays it out (spec §11): header,
 * configuration naming the capability, `ram` START with the MEM_SIZE list
 * (each entry followed by its 28-byte header; bitmap right after, pages at
 * the next 4 KiB boundary here — QEMU uses 1 MiB), EOS, footer; one PART
 * (EOS) and the END (EOS), then a device FULL section and EOF.
 */
export function buildMappedRamFile(blocks: MappedRamSpec[], opts: { machine?: string; pageSize?: number } = {}): Buffer {
  const ps = opts.pageSize ?? 4096;
  const machine = Buffer.from(opts.machine ?? 'pc-i440fx-10.0');
  const parts: Buffer[] = [];
  let size = 0;
  const put = (b: Buffer): void => {
    parts.push(b);
    size += b.length;
  };
  /** Writes `b` at absolute `at` (≥ size), padding with zeros. */
  const putAt = (at: number, b: Buffer): void => {
    if (at < size) throw new Error('putAt behind');
    if (at > size) put(Buffer.alloc(at - size));
    put(b);
  };
  put(Buffer.from('5145564d00000003', 'hex'));
  put(Buffer.concat([Buffer.from([0x07]), be32(machine.length), machine]));
  put(Buffer.concat([Buffer.from([0x05]), name8('configuration/capabilities'), be32(1), be32(1), name8('mapped-ram')]));
  put(Buffer.concat([Buffer.from([0x01]), be32(1), name8('ram'), be32(0), be32(4)]));
  const total = blocks.reduce((n, b) => n + b.length, 0);
  const atEnd: { field: number; bitmap: Buffer }[] = [];
  put(be64(total + 0x04));
  const round = (n: number, to: number): number => Math.ceil(n / to) * to;
  for (const b of blocks) {
    put(Buffer.concat([name8(b.id), be64(b.length)]));
    const pages = Math.floor(b.length / ps);
    const bitmap = Buffer.alloc(Math.ceil(pages / 64) * 8);
    for (const i of b.present.keys()) bitmap[i >>> 3]! |= 1 << (i & 7);
    for (const i of b.extraBits ?? []) bitmap[i >>> 3]! |= 1 << (i & 7);
    const headerAt = size;
    const bitmapOffset = headerAt + 28;
    const pagesOffset = round(bitmapOffset + (b.bitmapAfterPages ? 0 : bitmap.length), ps);
    put(Buffer.concat([be32(b.version ?? 1), be64(b.headerPageSize ?? ps), be64(bitmapOffset), be64(pagesOffset)]));
    const region = Buffer.alloc(b.length);
    for (const [i, fill] of b.present) region.fill(fill, i * ps, (i + 1) * ps);
    if (b.bitmapAfterPages) atEnd.push({ field: headerAt + 12, bitmap });
    else putAt(bitmapOffset, bitmap);
    putAt(pagesOffset, region);
  }
  const eos = be64(0x10);
  const footer = Buffer.concat([Buffer.from([0x7e]), be32(1)]);
  put(Buffer.concat([eos, footer]));
  put(Buffer.concat([Buffer.from([0x02]), be32(1), eos, footer]));
  put(Buffer.concat([Buffer.from([0x03]), be32(1), eos, footer]));
  put(Buffer.concat([Buffer.from([0x04]), be32(0), name8('timer'), be32(0), be32(2), Buffer.from('0011223344', 'hex'), Buffer.from([0x00])]));
  for (const e of atEnd) {
    const at = size;
    put(e.bitmap);
    const file = Buffer.concat(parts);
    file.writeBigUInt64BE(BigInt(at), e.field);
    parts.length = 0;
    parts.push(file);
  }
  return Buffer.concat(parts);
}

/**
 * A record-stream QEMU file around RAM section bodies given as hex: header,
 * configuration (`machine`), START body `start`, PART bodies, END body, a
 * device FULL section, EOF.
 */
export function buildRecordFile(machine: string, start: Uint8Array, parts: Uint8Array[], end: Uint8Array): Buffer {
  const m = Buffer.from(machine);
  const footer = Buffer.concat([Buffer.from([0x7e]), be32(2)]);
  return Buffer.concat([
    Buffer.from('5145564d00000003', 'hex'),
    Buffer.from([0x07]),
    be32(m.length),
    m,
    Buffer.concat([Buffer.from([0x01]), be32(2), name8('ram'), be32(0), be32(4)]),
    start,
    footer,
    ...parts.flatMap((p) => [Buffer.concat([Buffer.from([0x02]), be32(2)]), p, footer]),
    Buffer.concat([Buffer.from([0x03]), be32(2)]),
    end,
    footer,
    Buffer.concat([Buffer.from([0x04]), be32(0), name8('timer'), be32(0), be32(2), Buffer.from('0011223344', 'hex'), Buffer.from([0x00])]),
  ]);
}
