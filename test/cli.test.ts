/**
 * Tests of the `xbzrle` command (issue 6). Most run it in-process (`runMain`:
 * `main(argv, io)` over in-memory streams); those that need a real process
 * spawn the BUILT bin (`runCli`, `node dist/cli.cjs ...`): --version through the
 * bin, terminals (`script`), `-o /dev/stdout`, stdout redirected onto an input,
 * and readers that close early (EPIPE). `npm test` builds first; run
 * `npm run build` before `npx vitest run test/cli.test.ts`.
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, rng, sameBytes } from './helpers/bytes.js';
import { assertBuilt, CLI, PACKAGE_JSON, run, runCli, runMain, sha256, tempFilesIn, type CliResult } from './helpers/cli.js';
import { findRamSections, loadFixture, PC_BLOCKS } from './helpers/qemu-file.js';
import { buildRecords } from './helpers/streams.js';

const PS = 4096;
/**
 * `diff` writing the plain RAM record stream (QEMU's framing): these tests pin
 * that format's records, offsets and refusals. The default checked container
 * has its own tests (test/delta-*.test.ts, test/cli-delta.test.ts).
 */
const DIFF = ['diff', '--format', 'qemu'];

let root = '';
let counter = 0;

beforeAll(async () => {
  assertBuilt();
  root = await mkdtemp(join(tmpdir(), 'xbzrle-cli-test-'));
});

afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

/** A fresh, empty folder for one test. */
function freshDir(label: string): string {
  const dir = join(root, `${label}-${++counter}`);
  mkdirSync(dir);
  return dir;
}

function put(dir: string, name: string, data: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

/** The stat --json report (throws with the CLI's stderr when the command failed). */
async function statJson(file: string): Promise<any> {
  const r = await runMain(['stat', file, '--json']);
  if (r.code !== 0) throw new Error(`stat ${file} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8'));
}

/** Exit 0, and no stack trace on stderr (a summary line is fine). */
function expectOk(r: CliResult): void {
  expect(r.code, `exit status; stderr: ${r.stderr}`).toBe(0);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** Exit 1 with one line `xbzrle: <message>` on stderr (no usage hint, no stack). */
function expectOneLineError(r: CliResult, pattern: RegExp): void {
  expect(r.code, `exit status; stderr: ${r.stderr}`).toBe(1);
  expect(r.stderr.endsWith('\n')).toBe(true);
  const lines = r.stderr.slice(0, -1).split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^xbzrle: /);
  expect(lines[0]).toMatch(pattern);
}

/** Exit 1 with `xbzrle: <message>` then the usage hint. */
function expectUsageError(r: CliResult, pattern: RegExp): void {
  expect(r.code, `exit status; stderr: ${r.stderr}`).toBe(1);
  expect(r.stderr).toMatch(/^xbzrle: /);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).toMatch(/\nTry 'xbzrle ([a-z]+ )?--help'\.\n$/);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `diff OLD NEW` run once (in its own folder) and shared by the tests that need a valid delta. */
function sharedDelta(oldImg: Uint8Array, newImg: Uint8Array): () => Promise<Buffer> {
  let memo: Promise<Buffer> | undefined;
  return () =>
    (memo ??= (async () => {
      const dir = freshDir('delta');
      const res = await runMain([...DIFF, put(dir, 'old', oldImg), put(dir, 'new', newImg), '-o', join(dir, 'd'), '-q']);
      if (res.code !== 0) throw new Error(`diff failed: ${res.stderr}`);
      return readFileSync(join(dir, 'd'));
    })());
}

// ---------------------------------------------------------------------------
// Deterministic generated images
// ---------------------------------------------------------------------------

const zeroPage = (): Uint8Array => new Uint8Array(PS);
const randomPage = (r: () => number): Uint8Array => randomBytes(PS, r);

/** A page of low-entropy text-like bytes (compresses well, never all zero). */
function textPage(r: () => number): Uint8Array {
  const p = new Uint8Array(PS);
  const phrase = `page ${Math.floor(r() * 1e9)} of guest memory; `;
  for (let i = 0; i < PS; i++) p[i] = phrase.charCodeAt(i % phrase.length);
  return p;
}

/** A copy of `p` with 1 to 6 bytes changed (always to a different value). */
function sparseEdit(p: Uint8Array, r: () => number): Uint8Array {
  const q = p.slice();
  const n = 1 + Math.floor(r() * 6);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(r() * PS);
    q[i] = (q[i]! + 1 + Math.floor(r() * 254)) & 0xff;
  }
  return q;
}

/** `n` pages cycling through zero, random, text, random, zero, text. */
function basePages(n: number, r: () => number): Uint8Array[] {
  const kinds = [zeroPage, () => randomPage(r), () => textPage(r), () => randomPage(r), zeroPage, () => textPage(r)];
  return Array.from({ length: n }, (_, i) => kinds[i % kinds.length]!());
}

type Op = 'same' | 'sparse' | 'rewrite' | 'zero';

function mutate(pages: Uint8Array[], op: (i: number) => Op, r: () => number): Uint8Array[] {
  return pages.map((p, i) => {
    switch (op(i)) {
      case 'same':
        return p.slice();
      case 'sparse':
        return sparseEdit(p, r);
      case 'rewrite':
        return randomPage(r);
      case 'zero':
        return zeroPage();
    }
  });
}

function join_(pages: Uint8Array[]): Buffer {
  return Buffer.concat(pages);
}

const MIXED_OPS: Op[] = ['same', 'sparse', 'rewrite', 'zero', 'same', 'sparse', 'same'];
const mixedOp = (i: number): Op => MIXED_OPS[i % MIXED_OPS.length]!;

/**
 * The records `diff` must write for NEW against OLD (pages past OLD's end
 * compared with zeros): none for an unchanged page, ZERO for a page now all
 * zero, XBZRLE for a page with a few bytes changed, PAGE for a rewritten one
 * (whose delta cannot fit in a page).
 */
function expectedRecords(oldImg: Uint8Array, newImg: Uint8Array, ps = PS): { PAGE: number; ZERO: number; XBZRLE: number; changed: number } {
  const counts = { PAGE: 0, ZERO: 0, XBZRLE: 0, changed: 0 };
  const zero = new Uint8Array(ps);
  for (let at = 0; at < newImg.length; at += ps) {
    const o = at + ps <= oldImg.length ? oldImg.subarray(at, at + ps) : zero;
    const n = newImg.subarray(at, at + ps);
    if (sameBytes(o, n)) continue;
    counts.changed++;
    if (sameBytes(n, zero)) counts.ZERO++;
    else {
      let differing = 0;
      for (let i = 0; i < ps; i++) if (o[i] !== n[i]) differing++;
      if (differing <= 64) counts.XBZRLE++;
      else counts.PAGE++;
    }
  }
  return counts;
}

interface Scenario {
  name: string;
  old: Buffer;
  new: Buffer;
  /** Record kinds this scenario must exercise (count > 0). */
  exercises: ('PAGE' | 'ZERO' | 'XBZRLE' | 'unchanged')[];
}

function scenarios(): Scenario[] {
  const r = rng(0x5eed);
  const base48 = basePages(48, r);
  const base32 = basePages(32, r);
  const extra = Array.from({ length: 16 }, (_, i) => [zeroPage(), sparseEdit(zeroPage(), r), randomPage(r), textPage(r)][i % 4]!);
  return [
    {
      name: 'equal sizes, mixed changes',
      old: join_(base48),
      new: join_(mutate(base48, mixedOp, r)),
      exercises: ['PAGE', 'ZERO', 'XBZRLE', 'unchanged'],
    },
    {
      name: 'growth: pages past OLD end diffed against zeros',
      old: join_(base32),
      new: join_([...mutate(base32, mixedOp, r), ...extra]),
      exercises: ['PAGE', 'ZERO', 'XBZRLE', 'unchanged'],
    },
    {
      name: 'growth from an empty OLD',
      old: Buffer.alloc(0),
      new: join_(extra),
      exercises: ['PAGE', 'XBZRLE', 'unchanged'],
    },
    {
      name: 'shrink',
      old: join_(base48),
      new: join_(mutate(base48, mixedOp, r).slice(0, 20)),
      exercises: ['PAGE', 'ZERO', 'XBZRLE', 'unchanged'],
    },
    {
      name: 'all-zero NEW',
      old: join_(base48),
      new: Buffer.alloc(48 * PS),
      exercises: ['ZERO', 'unchanged'],
    },
    {
      name: 'fully random NEW (PAGE records)',
      old: join_(base48),
      new: join_(Array.from({ length: 48 }, () => randomPage(r))),
      exercises: ['PAGE'],
    },
    {
      name: 'sparse changes everywhere (XBZRLE records)',
      old: join_(base48),
      new: join_(mutate(base48, () => 'sparse', r)),
      exercises: ['XBZRLE'],
    },
    {
      name: 'identical images',
      old: join_(base48),
      new: join_(base48),
      exercises: ['unchanged'],
    },
  ];
}

// ---------------------------------------------------------------------------

describe.concurrent('xbzrle diff / patch round trips', () => {
  it.each(scenarios())('patch(OLD, diff(OLD, NEW)) is NEW byte for byte, with a record for exactly each changed page: $name', async (s) => {
    const dir = freshDir('rt');
    const oldPath = put(dir, 'old.img', s.old);
    const newPath = put(dir, 'new.img', s.new);
    const delta = join(dir, 'delta.xbz');
    const out = join(dir, 'patched.img');
    const before = [sha256(oldPath), sha256(newPath)];
    const want = expectedRecords(s.old, s.new);
    const pages = s.new.length / PS;
    for (const kind of s.exercises) {
      if (kind === 'unchanged') expect(want.changed, 'scenario has unchanged pages').toBeLessThan(pages);
      else expect(want[kind], `scenario has ${kind} pages`).toBeGreaterThan(0);
    }

    const d = await runMain([...DIFF, oldPath, newPath, '-o', delta]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout.length).toBe(0);
    expect(d.stderr).toContain(`${want.changed} of ${pages} pages changed`);

    const st = await statJson(delta);
    expect(st.format).toBe('delta');
    expect(st.records).toEqual({ PAGE: want.PAGE, ZERO: want.ZERO, XBZRLE: want.XBZRLE, MEM_SIZE: 1, EOS: 1 });
    expect(st.blocks).toEqual([{ id: 'ram', length: s.new.length }]);
    expect(st.ram.normal).toBe(want.PAGE);
    expect(st.ram.duplicate).toBe(want.ZERO);
    expect(st.ram.transferred).toBe(statSync(delta).size);

    const p = await runMain(['patch', oldPath, delta, '-o', out]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toContain(`applied ${want.changed} pages`);
    expect(sameBytes(readFileSync(out), s.new)).toBe(true);
    expect([sha256(oldPath), sha256(newPath)]).toEqual(before);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('chains: patch(patch(a, diff a b), diff b c) is c, across size changes', async () => {
    const dir = freshDir('chain');
    const r = rng(7);
    const a = basePages(32, r);
    const b = [...mutate(a, mixedOp, r), ...basePages(8, r)]; // grows to 40 pages
    const c = mutate(b, (i) => (i % 3 === 0 ? 'sparse' : i % 5 === 0 ? 'rewrite' : 'same'), r).slice(0, 24); // shrinks to 24
    const [pa, pb, pc] = [put(dir, 'a', join_(a)), put(dir, 'b', join_(b)), put(dir, 'c', join_(c))];
    expectOk(await runMain([...DIFF, pa, pb, '-o', join(dir, 'ab'), '-q']));
    expectOk(await runMain([...DIFF, pb, pc, '-o', join(dir, 'bc'), '-q']));
    expectOk(await runMain(['patch', pa, join(dir, 'ab'), '-o', join(dir, 'b2'), '-q']));
    expectOk(await runMain(['patch', join(dir, 'b2'), join(dir, 'bc'), '-o', join(dir, 'c2'), '-q']));
    expect(sameBytes(readFileSync(join(dir, 'b2')), join_(b))).toBe(true);
    expect(sha256(join(dir, 'c2'))).toBe(sha256(pc));
  });

  it('--page-size applies to diff and patch alike (8 KiB pages)', async () => {
    const dir = freshDir('ps');
    const r = rng(11);
    const oldImg = join_(basePages(32, r));
    const newImg = Buffer.from(oldImg);
    newImg[3 * 8192 + 17] = newImg[3 * 8192 + 17]! ^ 0x55;
    newImg.fill(0, 6 * 8192, 7 * 8192);
    const [po, pn] = [put(dir, 'old', oldImg), put(dir, 'new', newImg)];
    expectOk(await runMain([...DIFF, po, pn, '-o', join(dir, 'd'), '--page-size', '8k', '-q']));
    const st = await runMain(['stat', join(dir, 'd'), '--json', '--page-size', '8192']);
    expectOk(st);
    const json = JSON.parse(st.stdout.toString());
    expect(json.pageSize).toBe(8192);
    const want = expectedRecords(oldImg, newImg, 8192);
    expect(want).toEqual({ PAGE: 0, ZERO: 1, XBZRLE: 1, changed: 2 });
    expect(json.records).toEqual({ PAGE: want.PAGE, ZERO: want.ZERO, XBZRLE: want.XBZRLE, MEM_SIZE: 1, EOS: 1 });
    expect(json.blocks).toEqual([{ id: 'ram', length: oldImg.length }]);
    expectOk(await runMain(['patch', po, join(dir, 'd'), '-o', join(dir, 'out'), '--page-size', '8192', '-q']));
    expect(sameBytes(readFileSync(join(dir, 'out')), newImg)).toBe(true);
  });

  it('--block names the block in MEM_SIZE; patch --block must name a block of the delta', async () => {
    const dir = freshDir('block');
    const r = rng(12);
    const oldImg = join_(basePages(8, r));
    const newImg = join_(mutate(basePages(8, rng(12)), mixedOp, r));
    const [po, pn] = [put(dir, 'old', oldImg), put(dir, 'new', newImg)];
    const delta = join(dir, 'd');
    expectOk(await runMain([...DIFF, po, pn, '-o', delta, '--block', 'pc.ram', '-q']));
    expect((await statJson(delta)).blocks).toEqual([{ id: 'pc.ram', length: newImg.length }]);
    expectOk(await runMain(['patch', po, delta, '-o', join(dir, 'ok'), '--block', 'pc.ram', '-q']));
    expect(sameBytes(readFileSync(join(dir, 'ok')), newImg)).toBe(true);
    const bad = await runMain(['patch', po, delta, '-o', join(dir, 'bad'), '--block', 'other']);
    expectOneLineError(bad, /pc\.ram/);
    expect(existsSync(join(dir, 'bad'))).toBe(false);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('patch --block applies one block of a multi-block delta and checks and drops the others', async () => {
    const dir = freshDir('multiblock');
    const oldImg = Buffer.alloc(2 * PS, 1);
    const deltaBytes = buildRecords((w) => {
      w.memSize([
        { id: 'a', length: 2 * PS },
        { id: 'b', length: 2 * PS },
      ]);
      w.page('a', 0, new Uint8Array(PS).fill(0xaa), 0);
      w.page('b', PS, new Uint8Array(PS).fill(0xbb), 0);
      w.eos();
    });
    const po = put(dir, 'old', oldImg);
    const delta = put(dir, 'd', Buffer.from(deltaBytes));
    expectOk(await runMain(['patch', po, delta, '-o', join(dir, 'b.img'), '--block', 'b', '-q']));
    const b = readFileSync(join(dir, 'b.img'));
    expect(b.length).toBe(2 * PS);
    expect(b.subarray(0, PS).every((x) => x === 1)).toBe(true);
    expect(b.subarray(PS).every((x) => x === 0xbb)).toBe(true);
    const none = await runMain(['patch', po, delta, '-o', join(dir, 'x.img')]);
    expectOneLineError(none, /holds 2 blocks \(a, b\); choose one with --block/);
    const missing = await runMain(['patch', po, delta, '-o', join(dir, 'y.img'), '--block', 'c']);
    expectOneLineError(missing, /has no block "c" \(it holds a, b\)/);
    for (const f of ['x.img', 'y.img']) expect(existsSync(join(dir, f))).toBe(false);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('patch and decode without --block refuse a delta with no block list whose pages name two blocks', async () => {
    const dir = freshDir('undeclared');
    const po = put(dir, 'old', Buffer.alloc(2 * PS, 1));
    const delta = put(
      dir,
      'd',
      Buffer.from(
        buildRecords((w) => {
          w.page('a', 0, new Uint8Array(PS).fill(0xaa), 0);
          w.page('b', 0, new Uint8Array(PS).fill(0xbb), 0);
          w.eos();
        }),
      ),
    );
    const p = await runMain(['patch', po, delta, '-o', join(dir, 'p.img')]);
    expectOneLineError(p, /holds blocks "a" and "b"; choose one with --block/);
    const d = await runMain(['decode', delta, '--out', join(dir, 'd.img')]);
    expectOneLineError(d, /holds blocks "a" and "b"; choose one with --block/);
    for (const f of ['p.img', 'd.img']) expect(existsSync(join(dir, f))).toBe(false);
    expectOk(await runMain(['patch', po, delta, '-o', join(dir, 'b.img'), '--block', 'b', '-q']));
    expect(readFileSync(join(dir, 'b.img')).subarray(0, PS).every((x) => x === 0xbb)).toBe(true);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('sweeps only its own output\'s temp files left by dead runs, never a live run\'s temp of a similar name', async () => {
    const dir = freshDir('stale');
    const po = put(dir, 'old', Buffer.alloc(2 * PS, 3));
    const pn = put(dir, 'new', Buffer.alloc(2 * PS, 4));
    expectOk(await runMain([...DIFF, po, pn, '-o', join(dir, 'd'), '-q']));
    const exited = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((resolve) => exited.on('exit', () => resolve(exited.pid!)));
    const stale = `.out.${deadPid}.k3x9q2ab.xbzrle-tmp`; // ours, from a dead run
    const otherOutput = `.out.${deadPid}.${process.pid}.k3x9q2ab.xbzrle-tmp`; // a live run writing "out.<deadPid>"
    const lookalike = `.out.${deadPid}.k3x9q2ab.xbzrle-tmp.keep`;
    for (const name of [stale, otherOutput, lookalike]) writeFileSync(join(dir, name), 'x');
    expectOk(await runMain(['patch', po, join(dir, 'd'), '-o', join(dir, 'out'), '-q']));
    expect(existsSync(join(dir, stale))).toBe(false);
    expect(existsSync(join(dir, otherOutput))).toBe(true);
    expect(existsSync(join(dir, lookalike))).toBe(true);
  });

  it('diff of a NEW whose size is not a multiple of the page size is refused', async () => {
    const dir = freshDir('odd');
    const po = put(dir, 'old', Buffer.alloc(PS));
    const pn = put(dir, 'new', Buffer.alloc(PS + 100, 1));
    const r = await runMain([...DIFF, po, pn, '-o', join(dir, 'd')]);
    expectOneLineError(r, new RegExp(`${escapeRe(pn)}: size ${PS + 100} is not a multiple of the page size`));
    expect(readdirSync(dir).sort()).toEqual(['new', 'old']);
  });

  // BUG: `diff OLD EMPTY` exits 0 but writes a MEM_SIZE record with total 0
  // followed by a block entry; a reader stops reading the block list at total
  // 0 (spec ram-stream.md §4.2), so stat/patch reject the delta diff itself
  // wrote ("record at byte 8 has an unknown combination of flags 0x0").
  it('an empty NEW never yields a delta that patch rejects (diff refuses it, or patch rebuilds the empty image)', async () => {
    const dir = freshDir('empty-new');
    const po = put(dir, 'old', join_(basePages(4, rng(3))));
    const pn = put(dir, 'new', new Uint8Array(0));
    const delta = join(dir, 'd');
    const d = await runMain([...DIFF, po, pn, '-o', delta]);
    if (d.code === 0) {
      const p = await runMain(['patch', po, delta, '-o', join(dir, 'out')]);
      expect(p.code, p.stderr).toBe(0);
      expect(statSync(join(dir, 'out')).size).toBe(0);
    } else {
      expectOneLineError(d, new RegExp(escapeRe(pn)));
      expect(existsSync(delta)).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------

describe.concurrent('stdin / stdout piping', () => {
  const r = rng(21);
  const a = join_(basePages(40, r));
  const b = join_(mutate(basePages(40, rng(21)), mixedOp, r));

  it('diff without -o writes the delta to stdout (same bytes as -o) and nothing to stderr', async () => {
    const dir = freshDir('pipe');
    const [pa, pb] = [put(dir, 'a', a), put(dir, 'b', b)];
    const toStdout = await runMain([...DIFF, pa, pb]);
    expectOk(toStdout);
    expect(toStdout.stderr).toBe('');
    expectOk(await runMain([...DIFF, pa, pb, '-o', join(dir, 'd'), '-q']));
    expect(toStdout.stdout.equals(readFileSync(join(dir, 'd')))).toBe(true);
  });

  it.each([
    ['patch OLD -o NEW (delta on stdin)', (pa: string, out: string) => ['patch', pa, '-o', out]],
    ["patch OLD - -o NEW", (pa: string, out: string) => ['patch', pa, '-', '-o', out]],
  ])('diff a b | %s rebuilds b', async (_label, args) => {
    const dir = freshDir('pipe');
    const [pa, pb] = [put(dir, 'a', a), put(dir, 'b', b)];
    const delta = await runMain([...DIFF, pa, pb]);
    expectOk(delta);
    const out = join(dir, 'out');
    const p = await runMain(args(pa, out), { input: delta.stdout });
    expectOk(p);
    expect(sameBytes(readFileSync(out), b)).toBe(true);
  });

  it("diff - NEW reads OLD from stdin", async () => {
    const dir = freshDir('pipe');
    const [pa, pb] = [put(dir, 'a', a), put(dir, 'b', b)];
    const d = await runMain([...DIFF, '-', pb, '-o', join(dir, 'd'), '-q'], { input: a });
    expectOk(d);
    expectOk(await runMain(['patch', pa, join(dir, 'd'), '-o', join(dir, 'out'), '-q']));
    expect(sameBytes(readFileSync(join(dir, 'out')), b)).toBe(true);
  });

  it('stat reads stdin when FILE is omitted or -', async () => {
    const dir = freshDir('pipe');
    const [pa, pb] = [put(dir, 'a', a), put(dir, 'b', b)];
    const delta = (await runMain([...DIFF, pa, pb])).stdout;
    const want = expectedRecords(a, b);
    for (const args of [['stat', '--json'], ['stat', '-', '--json']]) {
      const st = await runMain(args, { input: delta });
      expectOk(st);
      const json = JSON.parse(st.stdout.toString());
      expect(json.file).toBe('stdin');
      expect(json.records).toEqual({ PAGE: want.PAGE, ZERO: want.ZERO, XBZRLE: want.XBZRLE, MEM_SIZE: 1, EOS: 1 });
    }
  });

  it('encode from stdin (--image-size) to stdout, piped into decode from stdin, gives the last round', async () => {
    const dir = freshDir('pipe');
    const rounds = Buffer.concat([a, b, a]);
    const enc = await runMain(['encode', '--image-size', `${a.length / 1024}k`], { input: rounds });
    expectOk(enc);
    expect(enc.stderr).toBe('');
    const out = join(dir, 'img');
    const dec = await runMain(['decode', '--out', out, '-q'], { input: enc.stdout });
    expectOk(dec);
    expect(sameBytes(readFileSync(out), a)).toBe(true);
  });
});

// ---------------------------------------------------------------------------

describe.concurrent('xbzrle encode / decode', () => {
  const r = rng(31);
  const r0 = basePages(64, r);
  const r1 = mutate(r0, mixedOp, r);
  const r2 = mutate(r1, (i) => (i % 2 === 0 ? 'sparse' : 'same'), r);
  const r3 = mutate(r2, (i) => (i % 9 === 0 ? 'zero' : i % 4 === 0 ? 'sparse' : 'same'), r);
  const rounds = [r0, r1, r2, r3].map(join_);
  const last = rounds[3]!;

  it('several image files as rounds: decode gives the last image; stdin rounds give the same stream', async () => {
    const dir = freshDir('enc');
    const files = rounds.map((img, i) => put(dir, `r${i}`, img));
    const before = files.map(sha256);
    const stream = join(dir, 's');
    const e = await runMain(['encode', ...files, '-o', stream]);
    expectOk(e);
    expect(e.stderr).toMatch(/4 rounds/);
    const st = await statJson(stream);
    expect(st.blocks).toEqual([{ id: 'ram', length: last.length }]);
    expect(st.records.MEM_SIZE).toBe(1);
    expect(st.records.XBZRLE).toBeGreaterThan(0);
    const d = await runMain(['decode', stream, '--out', join(dir, 'img')]);
    expectOk(d);
    expect(sameBytes(readFileSync(join(dir, 'img')), last)).toBe(true);
    expect(files.map(sha256)).toEqual(before);

    // The same rounds concatenated on stdin.
    const fromStdin = await runMain(['encode', '--image-size', String(last.length)], { input: Buffer.concat(rounds) });
    expectOk(fromStdin);
    expect(fromStdin.stdout.equals(readFileSync(stream))).toBe(true);
    const d2 = await runMain(['decode', '-', '--out', join(dir, 'img2'), '-q'], { input: fromStdin.stdout });
    expectOk(d2);
    expect(sameBytes(readFileSync(join(dir, 'img2')), last)).toBe(true);
  });

  it('a small --cache-size (16k: 4 pages) still round-trips', async () => {
    const dir = freshDir('enc');
    const files = rounds.map((img, i) => put(dir, `r${i}`, img));
    const stream = join(dir, 's');
    expectOk(await runMain(['encode', ...files, '-o', stream, '--cache-size', '16k', '-q']));
    // Files are read again for the next round instead of cached; stdin rounds are cached: the same stream.
    const fromStdin = await runMain(['encode', '--image-size', String(last.length), '--cache-size', '16k', '-q'], { input: Buffer.concat(rounds) });
    expectOk(fromStdin);
    expect(fromStdin.stdout.equals(readFileSync(stream))).toBe(true);
    expectOk(await runMain(['decode', stream, '--out', join(dir, 'img'), '-q']));
    expect(sameBytes(readFileSync(join(dir, 'img')), last)).toBe(true);
    // The decoder's page cache (2 pages here) is independent of the sender's.
    expectOk(await runMain(['decode', stream, '--out', join(dir, 'img-small'), '--cache-size', '8k', '-q']));
    expect(sameBytes(readFileSync(join(dir, 'img-small')), last)).toBe(true);
    // The commands that write a file take --cache-size for its page cache, up to what one buffer holds.
    for (const args of [['decode', stream, '--out', join(dir, 'img-huge')], ['patch', files[0]!, stream, '-o', join(dir, 'img-huge')], ['extract', stream, '--out', join(dir, 'huge')]]) {
      expectOneLineError(await runMain([...args, '--cache-size', '5G']), /--cache-size 5G: at most 4G \(4294967296 bytes\)/);
    }
    expect(existsSync(join(dir, 'img-huge')) || existsSync(join(dir, 'huge'))).toBe(false);
    // A cache of 4 pages cannot hold a 64-page image: most pages go whole.
    const big = await statJson(join(dir, 's'));
    expectOk(await runMain(['encode', ...files, '-o', join(dir, 's64'), '-q']));
    expect(big.records.PAGE).toBeGreaterThan((await statJson(join(dir, 's64'))).records.PAGE);
  });

  it('a diff delta (against zeros) is applied by patch, and decode says so', async () => {
    const dir = freshDir('enc');
    const pn = put(dir, 'new', last);
    expectOk(await runMain([...DIFF, '/dev/null', pn, '-o', join(dir, 'd'), '-q']));
    expectOneLineError(await runMain(['decode', join(dir, 'd'), '--out', join(dir, 'img'), '-q']), /a delta against a base image .*apply it with 'xbzrle patch/);
    expectOk(await runMain(['patch', '/dev/null', join(dir, 'd'), '-o', join(dir, 'img'), '-q']));
    expect(sameBytes(readFileSync(join(dir, 'img')), last)).toBe(true);
  });

  it('encode refuses images of different sizes, and stdin without --image-size', async () => {
    const dir = freshDir('enc');
    const p0 = put(dir, 'r0', rounds[0]!);
    const small = put(dir, 'small', rounds[1]!.subarray(0, 8 * PS));
    const e = await runMain(['encode', p0, small, '-o', join(dir, 's')]);
    expectOneLineError(e, new RegExp(`${escapeRe(small)}: size ${8 * PS} differs from the image size ${last.length}`));
    expect(existsSync(join(dir, 's'))).toBe(false);
    const noSize = await runMain(['encode', '-o', join(dir, 's')], { input: last });
    expectUsageError(noSize, /--image-size/);
    const partial = await runMain(['encode', '--image-size', String(last.length), '-o', join(dir, 's')], { input: last.subarray(0, last.length - PS) });
    expect(partial.code).toBe(1);
    expect(partial.stderr).toMatch(/^xbzrle: stdin: /);
    expect(readdirSync(dir).sort()).toEqual(['r0', 'small']);
  });
});

// ---------------------------------------------------------------------------

describe.concurrent('refusals', () => {
  const r = rng(41);
  const a = join_(basePages(12, r));
  const b = join_(mutate(basePages(12, rng(41)), mixedOp, r));

  const delta = sharedDelta(a, b);

  function setup(): { dir: string; pa: string; pb: string } {
    const dir = freshDir('refuse');
    return { dir, pa: put(dir, 'a', a), pb: put(dir, 'b', b) };
  }

  it('an existing output is not overwritten without -f (exit 1, message, file unchanged); -f replaces it', async () => {
    const { dir, pa, pb } = setup();
    const delta = put(dir, 'd', Buffer.from('precious\n'));
    const refused = await runMain([...DIFF, pa, pb, '-o', delta]);
    expectOneLineError(refused, new RegExp(`${escapeRe(delta)}: already exists \\(use -f to overwrite\\)`));
    expect(readFileSync(delta, 'utf8')).toBe('precious\n');
    expect(tempFilesIn(dir)).toEqual([]);

    expectOk(await runMain([...DIFF, pa, pb, '-o', delta, '-f', '-q']));
    const out = put(dir, 'out', Buffer.from('old output'));
    const refusedPatch = await runMain(['patch', pa, delta, '-o', out]);
    expectOneLineError(refusedPatch, /already exists/);
    expect(readFileSync(out, 'utf8')).toBe('old output');
    expectOk(await runMain(['patch', pa, delta, '-o', out, '--force', '-q']));
    expect(sameBytes(readFileSync(out), b)).toBe(true);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it.each([
    ['encode', (d: string) => ['encode', join(d, 'a'), join(d, 'b'), '-o', join(d, 'x')]],
    ['decode', (d: string) => ['decode', join(d, 's'), '--out', join(d, 'x')]],
  ])('%s does not overwrite an existing output without -f', async (_name, args) => {
    const { dir } = setup();
    put(dir, 'd', await delta());
    expectOk(await runMain(['encode', join(dir, 'a'), join(dir, 'b'), '-o', join(dir, 's'), '-q'])); // a stream for decode
    const x = put(dir, 'x', Buffer.from('keep me'));
    expectOneLineError(await runMain(args(dir)), /already exists/);
    expect(readFileSync(x, 'utf8')).toBe('keep me');
    expect(tempFilesIn(dir)).toEqual([]);
    expectOk(await runMain([...args(dir), '-f', '-q']));
    expect(readFileSync(x, 'utf8')).not.toBe('keep me');
  });

  it.each([
    ['diff -o OLD', (d: string) => [...DIFF, join(d, 'a'), join(d, 'b'), '-o', join(d, 'a'), '-f']],
    ['diff -o NEW', (d: string) => [...DIFF, join(d, 'a'), join(d, 'b'), '-o', join(d, 'b'), '-f']],
    ['patch -o OLD', (d: string) => ['patch', join(d, 'a'), join(d, 'd'), '-o', join(d, 'a'), '-f']],
    ['patch -o DELTA', (d: string) => ['patch', join(d, 'a'), join(d, 'd'), '-o', join(d, 'd'), '-f']],
    ['encode -o IMAGE', (d: string) => ['encode', join(d, 'a'), join(d, 'b'), '-o', join(d, 'b'), '-f']],
    ['decode --out IN', (d: string) => ['decode', join(d, 'd'), '--out', join(d, 'd'), '-f']],
  ])('%s (an input file) is refused even with -f', async (_label, args) => {
    const { dir } = setup();
    put(dir, 'd', await delta());
    const before = ['a', 'b', 'd'].map((n) => sha256(join(dir, n)));
    const res = await runMain(args(dir));
    expectOneLineError(res, /is also an input file/);
    expect(['a', 'b', 'd'].map((n) => sha256(join(dir, n)))).toEqual(before);
    expect(readdirSync(dir).sort()).toEqual(['a', 'b', 'd']);
  });

  it.each([
    ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['unknown option', [...DIFF, 'a', 'b', '--bogus'], /--bogus/],
    ['option of another command', ['stat', 'x', '--cache-size', '1M'], /--cache-size does not apply/],
    ['missing operand', [...DIFF, 'a'], /diff needs OLD and NEW/],
    ['patch without -o', ['patch', 'a', 'd'], /-o NEW/],
    ['bad size', ['encode', '--image-size', '12q'], /--image-size: not a size/],
    ['bad page size', [...DIFF, 'a', 'b', '--page-size', '3000'], /--page-size must be a power of two/],
  ])('%s: exit 1 with a message', async (_label, args, pattern) => {
    const dir = freshDir('usage');
    const res = await runMain(args, { cwd: dir });
    expect(res.code, res.stderr).toBe(1);
    expect(res.stdout.length).toBe(0);
    expect(res.stderr).toMatch(/^xbzrle: /);
    expect(res.stderr).toMatch(pattern);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a missing input file is named in the message', async () => {
    const { dir, pa } = setup();
    const missing = join(dir, 'nope');
    expectOneLineError(await runMain(['patch', missing, pa, '-o', join(dir, 'out')]), new RegExp(`${escapeRe(missing)}: no such file`));
    expectOneLineError(await runMain(['stat', missing]), new RegExp(`${escapeRe(missing)}: no such file`));
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  // A real terminal through util-linux `script` (stdin and stdout become a pty).
  const hasScript = process.platform === 'linux' && existsSync('/usr/bin/script');
  const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const inPty = (args: string[]): Promise<CliResult> =>
    run('/usr/bin/script', ['-qec', [process.execPath, CLI, ...args].map(sh).join(' '), '/dev/null']);

  it.skipIf(!hasScript)('binary output to a terminal is refused without -f, written with -f', async () => {
    const { dir, pa, pb } = setup();
    const refused = await inPty([...DIFF, pa, pb]);
    expect(refused.code).toBe(1);
    expect(refused.stdout.toString()).toMatch(/refusing to write binary data to a terminal/);
    const enc = await inPty(['encode', pa]);
    expect(enc.code).toBe(1);
    expect(enc.stdout.toString()).toMatch(/refusing to write binary data to a terminal/);
    const forced = await inPty([...DIFF, pa, pb, '-f']);
    expect(forced.code).toBe(0);
    expect(forced.stdout.length).toBeGreaterThan(0);
    expect(readdirSync(dir).sort()).toEqual(['a', 'b']);
  });

  it.skipIf(!hasScript)('a delta expected on stdin is refused when stdin is a terminal', async () => {
    const { dir, pa } = setup();
    const res = await inPty(['patch', pa, '-o', join(dir, 'out')]);
    expect(res.code).toBe(1);
    expect(res.stdout.toString()).toMatch(/stdin is a terminal/);
    expect(readdirSync(dir).sort()).toEqual(['a', 'b']);
  });
});

// ---------------------------------------------------------------------------

/** Offset and length of the first XBZRLE record's delta bytes in a RAM record stream. */
function findXbzrlePayload(d: Buffer, ps = PS): { at: number; length: number; encodingAt: number } {
  let p = 0;
  for (;;) {
    const hi = d.readUInt32BE(p);
    const lo = d.readUInt32BE(p + 4);
    const flags = lo & (ps - 1);
    p += 8;
    if (flags & 0x04) {
      let total = hi * 2 ** 32 + (lo - flags);
      while (total > 0) {
        const len = d[p]!;
        total -= Number(d.readBigUInt64BE(p + 1 + len));
        p += 1 + len + 8;
      }
      continue;
    }
    if (flags & 0x10) throw new Error('no XBZRLE record in the stream');
    if (!(flags & 0x20)) p += 1 + d[p]!;
    if (flags & 0x02) p += 1;
    else if (flags & 0x08) p += ps;
    else if (flags & 0x40) return { encodingAt: p, at: p + 3, length: d.readUInt16BE(p + 1) };
    else throw new Error(`unexpected flags 0x${flags.toString(16)}`);
  }
}

describe.concurrent('bad input: exit 1, one-line message naming the file, no output left, inputs unchanged', () => {
  const r = rng(51);
  const oldImg = join_(basePages(24, r));
  const newImg = join_(mutate(basePages(24, rng(51)), mixedOp, r));

  const goodDelta = sharedDelta(oldImg, newImg);

  /** A folder holding OLD, and a valid delta of OLD → NEW to break. */
  async function setup(): Promise<{ dir: string; po: string; good: Buffer }> {
    const dir = freshDir('bad');
    return { dir, po: put(dir, 'old', oldImg), good: await goodDelta() };
  }

  async function expectRejected(dir: string, po: string, bad: Buffer, pattern: RegExp, commands: ('patch' | 'decode' | 'stat')[] = ['patch', 'decode', 'stat']): Promise<void> {
    const pb = put(dir, 'bad.xbz', bad);
    const before = readdirSync(dir).sort();
    const hashes = [sha256(po), sha256(pb)];
    const pattern_ = new RegExp(`^xbzrle: ${escapeRe(pb)}: .*${pattern.source}`);
    for (const cmd of commands) {
      const out = join(dir, `out-${cmd}`);
      const args = cmd === 'patch' ? ['patch', po, pb, '-o', out] : cmd === 'decode' ? ['decode', pb, '--out', out] : ['stat', pb, '--json'];
      const res = await runMain(args);
      // decode is not the command for a delta against a base image: it may say so first.
      expectOneLineError(res, cmd === 'decode' && /apply it with 'xbzrle patch/.test(res.stderr) ? /a delta against a base image/ : pattern_);
      if (cmd === 'stat') expect(res.stdout.length).toBe(0);
      expect(existsSync(out), `${cmd} left ${out}`).toBe(false);
    }
    expect(readdirSync(dir).sort()).toEqual(before); // no output, no .xbzrle-tmp
    expect([sha256(po), sha256(pb)]).toEqual(hashes);
  }

  it('a delta truncated anywhere is refused, naming the byte offset', async () => {
    const { good } = await setup();
    const firstPage = 20; // after the MEM_SIZE record: be64 + (1 + 'ram' + be64)
    const cuts = [1, 8, 15, firstPage, firstPage + 12, good.length >> 1, good.length - 8, good.length - 1];
    await Promise.all(
      cuts.map(async (cut) => {
        const { dir, po } = await setup();
        const commands = cut === firstPage || cut === good.length - 8 ? (['patch', 'decode', 'stat'] as const) : (['patch'] as const);
        await expectRejected(dir, po, good.subarray(0, cut), /byte \d+/, [...commands]);
      }),
    );
  });

  it('a delta without its final EOS record is refused as truncated', async () => {
    const { dir, po, good } = await setup();
    expect(good.readBigUInt64BE(good.length - 8)).toBe(0x10n);
    await expectRejected(dir, po, good.subarray(0, good.length - 8), /without a final EOS/);
  });

  it('random bytes (no valid first record) are refused', async () => {
    const { dir, po } = await setup();
    // The first be64 then holds random flags and an offset far beyond any block.
    await expectRejected(dir, po, Buffer.from(randomBytes(4096, rng(52))), /byte 0/);
  });

  it.each([
    ['all 0xff (an unterminated run length)', (b: Buffer, x: { at: number; length: number }) => b.fill(0xff, x.at, x.at + x.length)],
    ['a zero run past the end of the page', (b: Buffer, x: { at: number; length: number }) => {
      b[x.at] = 0xff; // uleb128 0x7f | 0x7f << 7 = 16383 zero bytes
      b[x.at + 1] = 0x7f;
    }],
    ['a wrong encoding byte', (b: Buffer, x: { encodingAt: number }) => {
      b[x.encodingAt] = 0x02;
    }],
  ])('an XBZRLE record with corrupted bytes is refused: %s', async (label, corrupt) => {
    const { dir, po, good } = await setup();
    const x = findXbzrlePayload(good);
    expect(x.length).toBeGreaterThan(2);
    const bad = Buffer.from(good);
    corrupt(bad, x as { at: number; length: number; encodingAt: number });
    await expectRejected(dir, po, bad, /byte \d+/, label.startsWith('all') ? ['patch', 'decode', 'stat'] : ['patch', 'stat']);
  });

  describe('QEMU migration files where a delta is expected', () => {
    let mig: Buffer = Buffer.alloc(0);
    beforeAll(() => {
      mig = loadFixture('sparse-c32m').mig;
    });

    it('patch and decode say it is a QEMU migration file, leaving nothing behind', async () => {
      const dir = freshDir('qemu-as-delta');
      const po = put(dir, 'old', oldImg);
      const pm = put(dir, 's.mig', mig);
      const hashes = [sha256(po), sha256(pm)];
      for (const args of [
        ['patch', po, pm, '-o', join(dir, 'out')],
        ['decode', pm, '--out', join(dir, 'out')],
      ]) {
        const res = await runMain(args);
        expectOneLineError(res, new RegExp(`^xbzrle: ${escapeRe(pm)}: this is a QEMU migration file, not a delta`));
      }
      expect(readdirSync(dir).sort()).toEqual(['old', 's.mig']);
      expect([sha256(po), sha256(pm)]).toEqual(hashes);
    });

    it('a QEMU file with an unsupported version or cut short is refused by stat and extract', async () => {
      const dir = freshDir('qemu-bad');
      const v2 = Buffer.from(mig.subarray(0, 1 << 20));
      v2.writeUInt32BE(2, 4);
      const pv = put(dir, 'v2.mig', v2);
      const cut = put(dir, 'cut.mig', mig.subarray(0, 3_000_001));
      const outDir = join(dir, 'blocks');
      for (const [file, pattern] of [
        [pv, /version 2/],
        [cut, /byte \d+/],
      ] as const) {
        expectOneLineError(await runMain(['stat', file]), new RegExp(`^xbzrle: ${escapeRe(file)}: .*${pattern.source}`));
        const ex = await runMain(['extract', file, '--out', outDir]);
        expectOneLineError(ex, new RegExp(`^xbzrle: ${escapeRe(file)}: .*${pattern.source}`));
        expect(existsSync(outDir) ? readdirSync(outDir) : []).toEqual([]);
      }
      expect(readdirSync(dir).sort().filter((n) => n !== 'blocks')).toEqual(['cut.mig', 'v2.mig']);
    });
  });
});

// ---------------------------------------------------------------------------

const BLOCKS = PC_BLOCKS;

const captures = [
  // Record counts from the fixtures' README; no page hit the cache unchanged in these captures.
  // smallCache: also extract with a 2 MiB page cache. On mixed-c8m only: the same path on
  // sparse-c32m (60404 XBZRLE records, each reading its page back from the output file) took
  // ~6 s of this file's time for nothing the 6081 read-backs of mixed-c8m do not exercise.
  { name: 'sparse-c32m', PAGE: 8317, ZERO: 8214, XBZRLE: 60404, EOS: 23, unchangedHits: 0, smallCache: false },
  { name: 'mixed-c8m', PAGE: 8032, ZERO: 14536, XBZRLE: 6081, EOS: 18, unchangedHits: 0, smallCache: true },
] as const;

describe.concurrent.each(captures)('extract and stat on the QEMU 7.2 capture $name', (cap) => {
  let dir = '';
  let migPath = '';
  let ram: Buffer = Buffer.alloc(0);
  let query: any;
  /** `stat --json` of the capture, run once for the tests that compare against it. */
  let stat: Promise<any> | undefined;
  const captureStat = (): Promise<any> => (stat ??= statJson(migPath));

  beforeAll(() => {
    const f = loadFixture(cap.name);
    ram = f.ram;
    query = f.query['query-migrate'];
    dir = freshDir(`fixture-${cap.name}`);
    migPath = put(dir, `${cap.name}.mig`, f.mig);
  });

  it('extract writes every block as DIR/<id with / → _>.bin, pc.ram.bin equal to the ground truth, and --json equals stat --json', async () => {
    const out = join(dir, 'blocks');
    const before = sha256(migPath);
    const ex = await runMain(['extract', migPath, '--out', out, '--json']);
    expectOk(ex);
    const names = BLOCKS.map(([id]) => id.replace(/\//g, '_') + '.bin');
    expect(readdirSync(out).sort()).toEqual([...names].sort());
    for (const [id, length] of BLOCKS) expect(statSync(join(out, id.replace(/\//g, '_') + '.bin')).size, id).toBe(length);
    expect(sameBytes(readFileSync(join(out, 'pc.ram.bin')), ram)).toBe(true);
    expect(sha256(migPath)).toBe(before);

    const exJson = JSON.parse(ex.stdout.toString());
    const stJson = await captureStat();
    expect(exJson).toEqual(stJson);

    // Extracting again refuses to overwrite the block files without -f.
    const again = await runMain(['extract', migPath, '--out', out]);
    expectOneLineError(again, /already exists/);
    expect(tempFilesIn(out)).toEqual([]);
    expect(sameBytes(readFileSync(join(out, 'pc.ram.bin')), ram)).toBe(true);

    // A page cache far smaller than the image (and than the sender's XBZRLE cache) gives the same image.
    if (!cap.smallCache) return;
    const small = join(dir, 'small-cache');
    expectOk(await runMain(['extract', migPath, '--out', small, '--cache-size', '2M', '-q']));
    expect(sameBytes(readFileSync(join(small, 'pc.ram.bin')), ram)).toBe(true);
  });

  it('extract of the capture cut between two RAM sections exits 1 and leaves existing block files alone', async () => {
    const mig = readFileSync(migPath);
    const { bodies } = findRamSections(mig);
    let cut = bodies[Math.floor(bodies.length / 2)]![1];
    if (mig[cut] === 0x7e) cut += 5; // the section footer
    const part = put(dir, 'cut.mig', mig.subarray(0, cut));
    const out = join(dir, 'cut-blocks');
    mkdirSync(out, { recursive: true });
    const kept = put(out, 'pc.ram.bin', Buffer.from('earlier extract'));
    const r = await runMain(['extract', part, '--out', out, '-f', '-q']);
    expectOneLineError(r, /the RAM sections end before all RAM was sent \(stopped at byte \d+\); nothing written/);
    expect(readFileSync(kept, 'utf8')).toBe('earlier extract');
    expect(readdirSync(out)).toEqual(['pc.ram.bin']);
  });

  it("stat --json matches the capture's query-migrate and the spec's identities", async () => {
    const st = await captureStat();
    expect(st.format).toBe('qemu');
    expect(st.machine).toBe('pc-i440fx-7.2');
    expect(st.blocks).toEqual(BLOCKS.map(([id, length]) => ({ id, length })));
    expect(st.ram.normal).toBe(query.ram.normal);
    expect(st.ram.duplicate).toBe(query.ram.duplicate);
    expect(st.ram['normal-bytes']).toBe(query.ram['normal-bytes']);
    expect(st.ram.transferred).toBe(query.ram.transferred);
    expect(st.records).toEqual({ PAGE: cap.PAGE, ZERO: cap.ZERO, XBZRLE: cap.XBZRLE, MEM_SIZE: 1, EOS: cap.EOS });
    // xbzrle-cache.pages = XBZRLE records + overflows + unchanged cache hits.
    const xq = query['xbzrle-cache'];
    expect(st.records.XBZRLE).toBe(xq.pages - xq.overflow - cap.unchangedHits);
    // xbzrle-cache.bytes = Σ(XBZRLE record length − 8) + 4096 × overflow.
    expect(st['xbzrle-cache'].bytes + 4096 * xq.overflow).toBe(xq.bytes);
  });

  it('human stat names the machine type and the record counts', async () => {
    const res = await runMain(['stat', migPath]);
    expectOk(res);
    const text = res.stdout.toString();
    expect(text).toContain('pc-i440fx-7.2');
    expect(text).toContain('QEMU migration stream');
    expect(text).toMatch(new RegExp(`PAGE ${cap.PAGE}\\s+ZERO ${cap.ZERO}\\s+XBZRLE ${cap.XBZRLE}\\s+MEM_SIZE 1\\s+EOS ${cap.EOS}`));
    expect(text).toMatch(/stopped at\s+byte \d+/);
  });
});

// ---------------------------------------------------------------------------

describe.concurrent('help and version', () => {
  it.each(['diff', 'patch', 'stat', 'extract', 'encode', 'decode'])('%s --help (or -h) prints its usage and exits 0', async (cmd) => {
    const res = await runMain([cmd, cmd === 'diff' ? '-h' : '--help']);
    expectOk(res);
    expect(res.stdout.toString()).toMatch(new RegExp(`^usage: xbzrle ${cmd} `));
    expect(res.stderr).toBe('');
  });

  it('--help lists every command and exits 0; no arguments prints usage and exits 1', async () => {
    const res = await runMain(['--help']);
    expectOk(res);
    for (const cmd of ['diff', 'patch', 'stat', 'extract', 'encode', 'decode']) expect(res.stdout.toString()).toContain(`  ${cmd} `);
    const none = await runMain([]);
    expect(none.code).toBe(1);
    expect(none.stdout.toString() + none.stderr).toMatch(/usage: xbzrle/);
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string };
    const res = await runCli(['--version']);
    expectOk(res);
    expect(res.stdout.toString()).toBe(`xbzrle ${version}\n`);
  });
});

// ---------------------------------------------------------------------------

describe.concurrent('output targets that are not plain new files', () => {
  const a = randomBytes(3 * PS, rng(71));
  const b = a.slice();
  b[5000] = b[5000]! ^ 0xff;

  it('a symbolic link is followed: its target gets the output, the link stays (diff, patch)', async () => {
    const dir = freshDir('links');
    const pa = put(dir, 'a', a);
    const pb = put(dir, 'b', b);
    put(dir, 'target', Buffer.from('old'));
    symlinkSync('target', join(dir, 'link'));
    expectOk(await runMain([...DIFF, pa, pb, '-o', join(dir, 'link'), '-f', '-q']));
    expect(lstatSync(join(dir, 'link')).isSymbolicLink()).toBe(true);
    expectOk(await runMain(['patch', pa, join(dir, 'link'), '-o', join(dir, 'link2'), '-q']));
    expect(sameBytes(readFileSync(join(dir, 'link2')), b)).toBe(true);
    put(dir, 'img', Buffer.from('old image'));
    symlinkSync('img', join(dir, 'imglink'));
    expectOk(await runMain(['patch', pa, join(dir, 'target'), '-o', join(dir, 'imglink'), '-f', '-q']));
    expect(lstatSync(join(dir, 'imglink')).isSymbolicLink()).toBe(true);
    expect(sameBytes(readFileSync(join(dir, 'img')), b)).toBe(true);
    // Without -f the link's existing target is not overwritten; a dangling link is refused.
    expectOneLineError(await runMain([...DIFF, pa, pb, '-o', join(dir, 'link')]), /already exists/);
    symlinkSync('nowhere', join(dir, 'dangling'));
    expectOneLineError(await runMain([...DIFF, pa, pb, '-o', join(dir, 'dangling'), '-f']), /symbolic link to nothing/);
    expect(lstatSync(join(dir, 'dangling')).isSymbolicLink()).toBe(true);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('a FIFO is written into, not replaced (diff); patch refuses one', async () => {
    const dir = freshDir('fifo');
    const pa = put(dir, 'a', a);
    const pb = put(dir, 'b', b);
    const fifo = join(dir, 'fifo');
    expectOk(await run('mkfifo', [fifo]));
    const reader = run('cat', [fifo]);
    const r = await runMain([...DIFF, pa, pb, '-o', fifo, '-q']);
    expectOk(r);
    const got = await reader;
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectOk(await runMain(['patch', pa, '-o', put(dir, 'check', a), '-f', '-q'], { input: got.stdout }));
    expect(sameBytes(readFileSync(join(dir, 'check')), b)).toBe(true);
    expectOneLineError(await runMain(['patch', pa, join(dir, 'check'), '-o', fifo, '-f']), /is not a regular file/);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('-o /dev/stdout into a pipe writes through the link; a device\'s write error names it', async () => {
    const dir = freshDir('devices');
    const pa = put(dir, 'a', a);
    const pb = put(dir, 'b', b);
    const viaLink = await runCli([...DIFF, pa, pb, '-o', '/dev/stdout', '-q']);
    expectOk(viaLink);
    const direct = await runMain([...DIFF, pa, pb]);
    expect(sameBytes(viaLink.stdout, direct.stdout)).toBe(true);
    if (existsSync('/dev/full')) {
      expectOneLineError(await runMain([...DIFF, pa, pb, '-o', '/dev/full']), /^xbzrle: \/dev\/full: .*no space left/i);
      expect(lstatSync('/dev/full').isCharacterDevice()).toBe(true);
    }
  });

  it('stdout that is one of the inputs (1<>b, >>a) is refused and the input left intact', async () => {
    const dir = freshDir('stdout-input');
    const pa = put(dir, 'a', a);
    const pb = put(dir, 'b', b);
    const r = await run('sh', ['-c', `"${process.execPath}" "${CLI}" diff "${pa}" "${pb}" 1<>"${pb}"`]);
    expectOneLineError(r, /stdout: is also an input file/);
    expect(sameBytes(readFileSync(pb), b)).toBe(true);
    const r2 = await run('sh', ['-c', `"${process.execPath}" "${CLI}" encode "${pa}" "${pb}" >>"${pa}"`]);
    expectOneLineError(r2, /stdout: is also an input file/);
    expect(sameBytes(readFileSync(pa), a)).toBe(true);
  });

  it('a name near the 255-byte limit still gets a temp file next to it', async () => {
    const dir = freshDir('longname');
    const name = join(dir, 'x'.repeat(240));
    expectOk(await runMain([...DIFF, put(dir, 'a', a), put(dir, 'b', b), '-o', name, '-q']));
    expect(existsSync(name)).toBe(true);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('extract refuses blocks whose file names collide, writing nothing', async () => {
    const dir = freshDir('collide');
    const delta = buildRecords((w) => {
      w.memSize([{ id: 'x/y', length: PS }, { id: 'x_y', length: PS }]);
      w.page('x/y', 0, a, 0);
      w.page('x_y', 0, b, 0);
      w.eos();
    });
    const out = join(dir, 'out');
    for (const force of [[], ['-f']]) {
      const r = await runMain(['extract', put(dir, 'd', delta), '--out', out, '-q', ...force]);
      expectOneLineError(r, /"x\/y" and "x_y" would both be written/);
      expect(existsSync(out)).toBe(false); // the folder extract made is gone again
    }
  });
});

describe.concurrent('EPIPE: a reader that closes early', () => {
  /** 16 MiB of PRNG bytes, 32 bits at a time. */
  function bigRandom(): Buffer {
    const r = rng(61);
    const words = new Uint32Array(4 << 20);
    for (let i = 0; i < words.length; i++) words[i] = (r() * 0x100000000) >>> 0;
    return Buffer.from(words.buffer);
  }

  /** Runs the CLI with stdout a pipe that the parent closes after the first chunk. */
  function closeAfterFirstChunk(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; got: number }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let got = 0;
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.once('data', (c: Buffer) => {
        got = c.length;
        child.stdout.destroy();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stderr, got });
      });
    });
  }

  let dir = '';
  let big = '';
  beforeAll(() => {
    dir = freshDir('epipe');
    big = put(dir, 'big.img', bigRandom());
  });

  it('diff to stdout exits 0 with nothing on stderr', async () => {
    const res = await closeAfterFirstChunk([...DIFF, '/dev/null', big]);
    expect(res.got).toBeGreaterThan(0);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
  });

  it('encode to stdout exits 0 with nothing on stderr', async () => {
    const res = await closeAfterFirstChunk(['encode', big, big]);
    expect(res.got).toBeGreaterThan(0);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
  });

  it('text output (--help, stat) to a reader that already left exits 0 with nothing on stderr', async () => {
    const delta = put(dir, 'small.delta', buildRecords((w) => {
      w.page('ram', 0, new Uint8Array(PS).fill(3), 0);
      w.eos();
    }));
    for (const args of [['--help'], [...DIFF, '--help'], ['stat', '--json', delta], ['stat', delta]]) {
      const res = await run('bash', ['-c', `"${process.execPath}" "${CLI}" ${args.map((x) => `"${x}"`).join(' ')} | true; echo "status \${PIPESTATUS[0]}"`]);
      expect(res.stderr).toBe('');
      expect(res.stdout.toString()).toBe('status 0\n');
    }
  });
});
