/**
 * A minimal QEMU migration-file walker for tests (spec: migration-file.md):
 * header, configuration section, then `ram` START/PART/END sections, stopping
 * at the first other section. RAM section bodies are delimited with a small
 * record-length scanner of its own (independent of the library's parser), and
 * returned as byte ranges so tests can feed the RAM records to the decoder.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

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
    mig: gunzipSync(readFileSync(FIXTURES + name + '.mig.gz')),
    ram: gunzipSync(readFileSync(FIXTURES + name + '.pc.ram.gz')),
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
