import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { analyse } from '../lib/cli/commands/stat.js';
import { report as reportCommand } from '../lib/cli/commands/report.js';
import type { CommonOptions } from '../lib/cli/args.js';
import { RamRecordParser } from '../lib/format/record-parser.js';
import { RecordWriter } from '../lib/format/record-writer.js';
import { buildMigrationReport, configuredPageSize, renderReportHtml, CELL_KIND, codeKind, codeLevel, cellLevel, type MigrationReport } from '../lib/report/index.js';
import { concat, randomBytes, rng } from './helpers/bytes.js';
import { findRamSections, loadFixture } from './helpers/qemu-file.js';
import { gunzipFile } from './helpers/fixtures.js';

const PS = 4096;
const FIXTURES_10 = fileURLToPath(new URL('./fixtures/qemu-10.0/', import.meta.url));
const GiB = 1024 ** 3;

type Round = { counts: Record<string, number>; bytes: number; pages: Map<string, Set<number>> };

/** Counts per round (records up to each EOS) and the round's bytes, with a plain parser over the given byte ranges. */
function roundsOf(stream: Uint8Array, ranges: [number, number][] = [[0, stream.length]], pageSize = PS): Round[] {
  const parser = new RamRecordParser({ pageSize });
  const out: Round[] = [];
  const fresh = (): Round => ({ counts: { PAGE: 0, ZERO: 0, XBZRLE: 0, MEM_SIZE: 0, EOS: 0 }, bytes: 0, pages: new Map() });
  let cur = fresh();
  const key = { page: 'PAGE', zero: 'ZERO', xbzrle: 'XBZRLE', mem_size: 'MEM_SIZE', eos: 'EOS' } as const;
  for (const [a, b] of ranges) {
    parser.push(stream.subarray(a, b)); // CONTINUE carries across sections: one parser
    for (let rec = parser.next(); rec !== null; rec = parser.next()) {
      cur.counts[key[rec.kind]]!++;
      cur.bytes += rec.size;
      if (rec.kind === 'page' || rec.kind === 'zero' || rec.kind === 'xbzrle') {
        let set = cur.pages.get(rec.block);
        if (set === undefined) cur.pages.set(rec.block, (set = new Set()));
        set.add(rec.offset / pageSize);
      }
      if (rec.kind === 'eos') {
        out.push(cur);
        cur = fresh();
      }
    }
  }
  return out;
}

function nonEmpty(codes: Uint8Array): number {
  let n = 0;
  for (const c of codes) if (c !== 0) n++;
  return n;
}

/** A valid XBZRLE delta of `len` (3–129) bytes: one run of `len - 2` changed bytes after a zero run. */
function delta(len: number): Uint8Array {
  const d = new Uint8Array(len).fill(0x5a);
  d[0] = 8;
  d[1] = len - 2;
  return d;
}

function build(fn: (w: RecordWriter) => void, pageSize = PS): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new RecordWriter({ pageSize }, (c) => chunks.push(c.slice()));
  fn(w);
  w.flush();
  return concat(chunks);
}

describe.each([
  { name: 'sparse-c32m', miss: 4097, overflow: 0 },
  { name: 'mixed-c8m', miss: 5008, overflow: 767 },
])('report of the QEMU 7.2 capture $name', ({ name, miss, overflow }) => {
  const { mig, query } = loadFixture(name);
  const found = findRamSections(mig);
  let data: MigrationReport;

  it('has the summary stat computes, and rounds with the stream’s record counts and bytes', async () => {
    data = await buildMigrationReport(mig, { name });
    const opts = { quiet: true, progress: false, pageSize: PS } as unknown as CommonOptions;
    const stat = await analyse({ name, stream: Readable.from([mig]), size: mig.length, path: undefined } as Parameters<typeof analyse>[0], opts, null, 'stat');
    // Every field the report has, as stat has it (stat may print more).
    const same = Object.fromEntries(Object.keys(data.summary).map((k) => [k, (stat as unknown as Record<string, unknown>)[k]]));
    expect({ ...data.summary, bytes: 0 }).toEqual({ ...same, bytes: 0 });
    expect(data.summary.ram.normal).toBe(query['query-migrate'].ram.normal);

    // Each RAM section body ends with its EOS: one round per body, counted independently.
    const expected = roundsOf(mig, found.bodies);
    expect(data.rounds.map((r) => r.records)).toEqual(expected.map((e) => e.counts));
    expect(data.rounds.map((r) => r.bytes)).toEqual(expected.map((e) => e.bytes));
    const sum = { PAGE: 0, ZERO: 0, XBZRLE: 0, MEM_SIZE: 0, EOS: 0 };
    for (const r of data.rounds) for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += r.records[k];
    expect(sum).toEqual(data.summary.records);
    for (const r of data.rounds) expect(r.newPages + r.cacheMiss + r.overflow + r.resent).toBe(r.records.PAGE);

    // Resent pages = QEMU's cache misses + overflows (the split is inferred from content).
    expect(data.classification).toBe('content');
    expect(data.inferred.cacheMiss + data.inferred.overflow).toBe(query['query-migrate']['xbzrle-cache']['cache-miss'] + query['query-migrate']['xbzrle-cache'].overflow);
    expect(data.inferred.cacheMiss + data.inferred.overflow).toBe(miss + overflow);
    if (overflow === 0) expect(data.inferred.overflow).toBe(0);
    else expect(data.inferred.overflow).toBeGreaterThanOrEqual(overflow);

    // Page maps: pc.ram has a page per cell; each round's map has a cell for every page it sent.
    const ram = data.blocks.find((b) => b.id === 'pc.ram')!;
    expect(ram).toMatchObject({ pages: 8192, cells: 8192, pagesPerCell: 1, declared: true });
    const active = expected.map((e, i) => ({ round: i + 1, pages: e.pages.get('pc.ram') })).filter((e) => e.pages !== undefined);
    expect(ram.frames.map((f) => f.firstRound)).toEqual(active.map((a) => a.round));
    ram.frames.forEach((f, i) => expect(nonEmpty(f.codes)).toBe(active[i]!.pages!.size));
    expect(data.blocks.map((b) => b.id)).toEqual(data.summary.blocks.map((b) => b.id));
    const html = renderReportHtml(data);
    expect(html.length).toBeLessThan(1_000_000);
  });

  if (name === 'sparse-c32m') {
    it('shows the rounds after the first pass as XBZRLE only, shaded by delta size', () => {
      const ram = data.blocks.find((b) => b.id === 'pc.ram')!;
      const late = ram.frames.filter((f) => f.firstRound >= 9);
      expect(late.length).toBeGreaterThan(10);
      for (const f of late) {
        const sent = [...f.codes].filter((c) => c !== 0);
        expect(new Set(sent.map(codeKind))).toEqual(new Set([CELL_KIND.XBZRLE]));
        // 4 changed bytes in every KiB of a page: deltas of about 16–32 bytes.
        for (const l of new Set(sent.map(codeLevel))) expect(Math.abs(l - cellLevel(26))).toBeLessThanOrEqual(2);
      }
    });
  }
});

describe('report of QEMU 10.0 captures', () => {
  const load = (name: string): { mig: Buffer; query: { ram: { normal: number }; 'xbzrle-cache': { 'cache-miss': number; overflow: number } } } => ({
    mig: gunzipFile(join(FIXTURES_10, `${name}.mig.gz`)),
    query: JSON.parse(readFileSync(join(FIXTURES_10, `${name}.query.json`), 'utf8'))['query-migrate'],
  });

  it('edge-c32m: resent pages = QEMU 10’s cache misses + overflows; rounds add up to the records', async () => {
    const { mig, query } = load('edge-c32m');
    const data = await buildMigrationReport(mig, { name: 'edge-c32m' });
    expect(data.summary.machine).toBe('pc-i440fx-10.0');
    expect(data.inferred.cacheMiss + data.inferred.overflow).toBe(query['xbzrle-cache']['cache-miss'] + query['xbzrle-cache'].overflow);
    for (const k of ['PAGE', 'ZERO', 'XBZRLE', 'MEM_SIZE', 'EOS'] as const) expect(data.rounds.reduce((n, r) => n + r.records[k], 0)).toBe(data.summary.records[k]);
  });

  it('mappedram-sparse: the pages present, once each, in the first round', async () => {
    const { mig } = load('mappedram-sparse');
    const data = await buildMigrationReport(mig, { name: 'mappedram-sparse' });
    expect(data.mappedRam).toBe(true);
    // The reader counts the pages its bitmaps say are present (QEMU's own `normal` counts every write, 25404).
    const present = data.summary.ram.normal;
    expect(present).toBeGreaterThan(4000);
    expect(data.inferred.newPages).toBe(present);
    expect(data.rounds[0]!.newPages).toBe(present);
    expect(data.rounds.slice(1).every((r) => r.records.PAGE === 0)).toBe(true);
    const maps = data.blocks.filter((b) => b.frames.length > 0);
    expect(maps.reduce((n, b) => n + nonEmpty(b.frames[0]!.codes), 0)).toBe(present);
    expect(data.blocks.map((b) => b.id)).toEqual(data.summary.blocks.map((b) => b.id));
    expect(renderReportHtml(data)).toContain('A mapped-ram file');
  });
});

describe('report of synthetic streams', () => {
  it('aggregates pages into cells: the kind costing most bytes, bytes per page as the level', async () => {
    const page = randomBytes(PS, rng(1));
    const stream = build((w) => {
      w.memSize([{ id: 'ram', length: GiB }]); // 262144 pages; 1024 cells of 256 pages
      for (let p = 0; p < 256; p++) w.zero('ram', p * PS); // cell 0: ZERO, every page
      w.page('ram', 256 * PS, page, 0); // cell 1: one PAGE
      for (let p = 512; p < 768; p += 2) w.xbzrle('ram', p * PS, delta(20), 0, 20); // cell 2: half its pages, 20-byte deltas
      w.page('ram', 768 * PS, page, 0); // cell 3: a PAGE outweighs ten small deltas
      for (let p = 769; p < 779; p++) w.xbzrle('ram', p * PS, delta(4), 0, 4);
      w.eos();
      w.page('ram', 256 * PS, page, 0); // resent, unchanged: the delta would fit (a miss)
      w.page('ram', 768 * PS, randomBytes(PS, rng(2)), 0); // resent, all changed: an overflow
      w.zero('ram', (GiB - PS) as number); // the last page
      w.eos();
    });
    const data = await buildMigrationReport(stream, { maxCellsPerMap: 1024, contentMemory: 2 * GiB });
    expect(data.summary.format).toBe('delta');
    const b = data.blocks[0]!;
    expect(b).toMatchObject({ id: 'ram', pages: 262144, cells: 1024, pagesPerCell: 256 });
    expect(b.frames).toHaveLength(2);
    const [r1, r2] = b.frames.map((f) => f.codes) as [Uint8Array, Uint8Array];
    expect(nonEmpty(r1)).toBe(4);
    expect([codeKind(r1[0]!), codeKind(r1[1]!), codeKind(r1[2]!), codeKind(r1[3]!)]).toEqual([CELL_KIND.ZERO, CELL_KIND.PAGE, CELL_KIND.XBZRLE, CELL_KIND.PAGE]);
    expect(codeLevel(r1[0]!)).toBe(cellLevel((13 + 255 * 9) / 256)); // ZERO records: 13 bytes with the name, then 9 (CONTINUE)
    expect(codeLevel(r1[2]!)).toBe(cellLevel((128 * (8 + 3 + 20)) / 256));
    expect(nonEmpty(r2)).toBe(3);
    expect([codeKind(r2[1]!), codeKind(r2[3]!), codeKind(r2[1023]!)]).toEqual([CELL_KIND.MISS, CELL_KIND.OVERFLOW, CELL_KIND.ZERO]);
    expect(data.rounds.map((r) => [r.newPages, r.cacheMiss, r.overflow])).toEqual([[2, 0, 0], [0, 1, 1]]);
    expect(data.rounds[1]!.cacheMissRate).toBeCloseTo(1 / 3);
    expect(data.rounds[0]!.encodingRate).toBeCloseTo((138 * PS) / (128 * 23 + 10 * 7));
    expect(b.roundsSent[1]).toBe(2);
    expect(b.roundsSent[0]).toBe(1);
    expect(data.deltaSizes.find((d) => d.to === 32)!.count).toBe(128);
    expect(data.deltaSizes.find((d) => d.to === 16)!.count).toBe(10);

    // Without page contents, resent pages are not told apart.
    const plain = await buildMigrationReport(stream, { maxCellsPerMap: 1024, contentMemory: 0 });
    expect(plain.classification).toBe('none');
    expect(plain.rounds[1]).toMatchObject({ resent: 2, cacheMiss: 0, overflow: 0 });
    expect(codeKind(plain.blocks[0]!.frames[1]!.codes[1]!)).toBe(CELL_KIND.RESENT);
  });

  it('merges successive rounds pairwise beyond maxMapsPerBlock, keeping every round accounted for', async () => {
    const stream = build((w) => {
      w.memSize([{ id: 'a', length: 64 * PS }, { id: 'b', length: 64 * PS }]);
      for (let r = 0; r < 100; r++) {
        w.zero('a', (r % 64) * PS);
        if (r % 3 === 0) w.xbzrle('b', (r % 64) * PS, delta(10), 0, 10);
        w.eos();
      }
    });
    const data = await buildMigrationReport(stream, { maxMapsPerBlock: 16 });
    expect(data.rounds).toHaveLength(100);
    const [a, b] = data.blocks as [MigrationReport['blocks'][0], MigrationReport['blocks'][0]];
    for (const [blk, active] of [
      [a, 100],
      [b, 34],
    ] as const) {
      expect(blk.frames.length).toBeLessThanOrEqual(16);
      expect(blk.frames.reduce((n, f) => n + f.rounds, 0)).toBe(active);
      expect(blk.roundsPerFrame & (blk.roundsPerFrame - 1)).toBe(0);
      for (let i = 1; i < blk.frames.length; i++) expect(blk.frames[i]!.firstRound).toBeGreaterThan(blk.frames[i - 1]!.lastRound);
      expect(blk.frames.reduce((n, f) => n + nonEmpty(f.codes), 0)).toBeGreaterThan(0);
    }
    // Block a: each page once per 64 rounds; a frame of k rounds shows k distinct pages (k ≤ 64).
    for (const f of a.frames) expect(nonEmpty(f.codes)).toBe(f.lastRound - f.firstRound + 1);
    // A total cell budget merges the block with the most maps first.
    const tight = await buildMigrationReport(stream, { maxMapCells: 64 * 8 });
    expect(tight.blocks.reduce((n, blk) => n + blk.frames.length * blk.cells, 0)).toBeLessThanOrEqual(64 * 8);
  });

  it('grows a block without MEM_SIZE, grouping cells as pages arrive further out', async () => {
    const stream = build((w) => {
      w.zero('ram', 0);
      w.eos();
      w.xbzrle('ram', 5000 * PS, delta(6), 0, 6);
      w.xbzrle('ram', 100_000 * PS, delta(6), 0, 6);
      w.eos();
    });
    const data = await buildMigrationReport(stream, { maxCellsPerMap: 1024 });
    const b = data.blocks[0]!;
    expect(b).toMatchObject({ declared: false, pages: 100_001, pagesPerCell: 128, cells: Math.ceil(100_001 / 128), length: 100_001 * PS });
    expect(b.frames.map((f) => [...f.codes.keys()].filter((i) => f.codes[i] !== 0))).toEqual([[0], [Math.floor(5000 / 128), Math.floor(100_000 / 128)]]);
    expect(codeKind(b.frames[0]!.codes[0]!)).toBe(CELL_KIND.ZERO);
  });

  it('merges per-round entries pairwise beyond maxRounds, and refuses more than 4096 blocks', async () => {
    const stream = build((w) => {
      for (let r = 0; r < 50; r++) {
        w.zero('ram', r * PS);
        if (r % 2 === 0) w.page('ram', r * PS, new Uint8Array(PS).fill(r + 1), 0);
        w.eos();
      }
    });
    const data = await buildMigrationReport(stream, { maxRounds: 8 });
    expect(data.rounds.length).toBeLessThanOrEqual(8);
    expect(data.rounds[0]!.round).toBe(1);
    expect(data.rounds[data.rounds.length - 1]!.lastRound).toBe(50);
    for (let i = 1; i < data.rounds.length; i++) expect(data.rounds[i]!.round).toBe(data.rounds[i - 1]!.lastRound + 1);
    expect(data.rounds.reduce((n, r) => n + r.records.ZERO, 0)).toBe(50);
    expect(data.rounds.reduce((n, r) => n + r.records.EOS, 0)).toBe(50);
    expect(data.rounds.reduce((n, r) => n + r.overflow, 0)).toBe(25); // each PAGE rewrites every byte of a zero page
    expect(renderReportHtml(data)).toContain('· 50 rounds ·');

    const many = build((w) => {
      for (let b = 0; b <= 4096; b++) w.zero(`b${b}`, 0);
      w.eos();
    });
    await expect(buildMigrationReport(many)).rejects.toMatchObject({ code: 'ERR_LIMIT_EXCEEDED' });
  });

  it('stays small for a 16 GiB guest: sparse records, many rounds, every cell touched', async () => {
    const rand = rng(16);
    const pages = (16 * GiB) / PS;
    const deltas = Array.from({ length: 7 }, (_, k) => delta(4 + k * 20));
    // Seven kinds of round (one record in each 2 MiB of guest RAM, i.e. in every cell), repeated.
    const kinds = Array.from({ length: 7 }, (_, r) =>
      build((w) => {
        for (let c = 0; c < 8192; c++) {
          const p = c * 512 + Math.floor(rand() * 512);
          const k = (c + r) % 7;
          if (k === 0) w.zero('pc.ram', p * PS);
          else w.xbzrle('pc.ram', p * PS, deltas[k]!, 0, 4 + k * 20);
        }
        if (r === 0) w.zero('vga.vram', 0);
        w.eos();
      }),
    );
    const head = build((w) => w.memSize([{ id: 'pc.ram', length: 16 * GiB }, { id: 'vga.vram', length: 16 << 20 }]));
    const stream = concat([head, ...Array.from({ length: 70 }, (_, r) => kinds[r % 7]!)]);
    const t = Date.now();
    const data = await buildMigrationReport(stream, { name: '16g.xs' });
    const html = renderReportHtml(data);
    expect(Date.now() - t).toBeLessThan(8000);
    expect(data.classification).toBe('none'); // 16 GiB is over the content memory limit
    const ram = data.blocks[0]!;
    expect(ram).toMatchObject({ pages, cells: 8192, pagesPerCell: 512 });
    expect(ram.frames.length).toBeLessThanOrEqual(64);
    expect(ram.frames.reduce((n, f) => n + f.rounds, 0)).toBe(70);
    for (const f of ram.frames) expect(nonEmpty(f.codes)).toBe(8192);
    expect(data.rounds).toHaveLength(70);
    expect(data.rounds.every((r) => r.records.ZERO + r.records.XBZRLE >= 8192)).toBe(true);
    expect(Buffer.byteLength(html)).toBeLessThan(5_000_000);
  }, 30_000);

  it('classifies resent pages by content until contentMemory runs out ("partial")', async () => {
    const page = new Uint8Array(PS).fill(3);
    const stream = build((w) => {
      w.page('ram', 0, page, 0);
      w.eos();
      w.page('ram', 0, page, 0); // unchanged: a miss
      w.page('ram', 1 << 20, page, 0); // a second 64 KiB segment: over the limit
      w.eos();
      w.page('ram', 1 << 20, page, 0);
      w.eos();
    });
    const data = await buildMigrationReport(stream, { contentMemory: 64 * 1024 });
    expect(data.classification).toBe('partial');
    expect(data.rounds.map((r) => [r.newPages, r.cacheMiss, r.resent])).toEqual([
      [1, 0, 0],
      [1, 1, 0],
      [0, 0, 1],
    ]);
    expect(renderReportHtml(data)).toContain('PAGE: resent (miss or overflow)');
  });

  it('reads the page size of a QEMU file from its configuration section', () => {
    const name = new TextEncoder().encode('configuration/target-page-bits');
    const machine = new TextEncoder().encode('virt-9.2');
    const head = concat([
      new Uint8Array([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3, 0x07, 0, 0, 0, machine.length]),
      machine,
      new Uint8Array([0x05, name.length]),
      name,
      new Uint8Array([0, 0, 0, 1, 0, 0, 0, 14]),
    ]);
    expect(configuredPageSize(head, 4096)).toBe(16384);
    expect(configuredPageSize(head.subarray(0, 20), 4096)).toBe(4096);
    expect(configuredPageSize(new Uint8Array([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3, 0x01]), 8192)).toBe(8192);
  });

  it('escapes names from the stream and embeds nothing external', async () => {
    const stream = build((w) => {
      w.memSize([{ id: '</script><img src=x onerror=alert(1)>', length: 4 * PS }]);
      w.zero('</script><img src=x onerror=alert(1)>', 0);
      w.eos();
    });
    const html = renderReportHtml(await buildMigrationReport(stream, { name: '<b>"x"</b>' }));
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>"x"');
    expect(html).not.toMatch(/(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
    expect(html).toContain("default-src 'none'");
    expect(html.match(/<\/script>/g)).toHaveLength(2); // the data block and the script
  });

  it('refuses malformed streams with the parser’s errors', async () => {
    const cut = build((w) => {
      w.zero('ram', 0);
    });
    await expect(buildMigrationReport(cut)).rejects.toMatchObject({ code: 'ERR_RAM_TRUNCATED' });
    await expect(buildMigrationReport(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1]))).rejects.toMatchObject({ code: 'ERR_RAM_UNKNOWN_FLAGS' });
  });
});

describe('xbzrle report (command)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xbzrle-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const o = (extra: object): CommonOptions => ({ quiet: true, progress: false, force: false, pageSize: PS, output: undefined, out: undefined, ...extra }) as unknown as CommonOptions;

  it('writes the HTML file, and refuses to overwrite it without -f', async () => {
    const input = join(dir, 'd.xs');
    writeFileSync(input, build((w) => {
      w.memSize([{ id: 'ram', length: 8 * PS }]);
      w.zero('ram', PS);
      w.eos();
    }));
    const out = join(dir, 'r.html');
    await reportCommand([input], o({ output: out }));
    const html = readFileSync(out, 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('d.xs');
    await expect(reportCommand([input], o({ output: out }))).rejects.toThrow(/already exists/);
    await reportCommand([input], o({ output: out, force: true }));
    await expect(reportCommand([join(dir, 'missing')], o({ output: join(dir, 'x.html') }))).rejects.toThrow(/no such file/);
  });
});
