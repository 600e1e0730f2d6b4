/**
 * Runs every script in examples/ as documented (`node examples/NAME.mjs`, from
 * the repository root, against the built dist/), so they cannot rot: each must
 * exit 0, print its key lines, and leave no temporary files behind.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { run as runProgram } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist', 'index.js');
const CLI = join(ROOT, 'dist', 'cli.js');
const EXAMPLES = join(ROOT, 'examples');

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The temp folder the children see (TMPDIR): must be empty again after each example. */
let childTmp: string;
/** Scratch space of the test itself. */
let scratch: string;
let examplesBefore: string[];

async function run(file: string, args: readonly string[] = [], timeout = 20_000): Promise<Result> {
  const r = await runProgram(process.execPath, [file, ...args], { cwd: ROOT, timeout, env: { TMPDIR: childTmp, TMP: childTmp, TEMP: childTmp } });
  return { ...r, stdout: r.stdout.toString('utf8') };
}

/** Runs examples/NAME.mjs and asserts a clean success. */
async function example(name: string, args: readonly string[] = []): Promise<string> {
  const r = await run(join('examples', name), args);
  if (r.code !== 0) throw new Error(`examples/${name} ${args.join(' ')} exited with ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  expect(r.stderr).toBe('');
  return r.stdout;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  if (!existsSync(DIST)) {
    throw new Error(`${DIST} does not exist: the examples import the built package; run 'npm run build' first (npm test does it before vitest)`);
  }
  childTmp = await mkdtemp(join(tmpdir(), 'xbzrle-examples-tmp-'));
  scratch = await mkdtemp(join(tmpdir(), 'xbzrle-examples-'));
  examplesBefore = readdirSync(EXAMPLES).sort();
});

afterAll(async () => {
  await rm(childTmp, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

beforeEach(async () => {
  expect(await readdir(childTmp)).toEqual([]);
});

afterEach(async () => {
  // No temp files left behind, and nothing written next to the examples.
  expect(await readdir(childTmp)).toEqual([]);
  expect(readdirSync(EXAMPLES).sort()).toEqual(examplesBefore);
});

const SCRIPTS = ['demo.mjs', 'http-upload.mjs', 'qemu-inspect.mjs', 'snapshot-chain.mjs', 'stats-live.mjs', 'tcp-migrate.mjs'];

describe('examples/', () => {
  it('every .mjs example has a line in examples/README.md, and is run below', async () => {
    const readme = await readFile(join(EXAMPLES, 'README.md'), 'utf8');
    const scripts = readdirSync(EXAMPLES).filter((f) => f.endsWith('.mjs') && f !== 'args.mjs');
    expect(scripts.sort()).toEqual(SCRIPTS);
    for (const s of scripts) {
      expect(readme).toContain(`[\`${s}\`](${s})`);
      expect(readme).toContain(`node examples/${s}`);
    }
  });

  it('every example answers --help with its usage, and a bad option with a one-line message and status 2', async () => {
    for (const s of SCRIPTS) {
      const help = await run(join(EXAMPLES, s), ['--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^usage: /);
      const bad = await run(join(EXAMPLES, s), ['--no-such-option']);
      expect(bad.code).toBe(2);
      expect(bad.stderr.toString()).toMatch(/^Unknown option '--no-such-option'.*\nusage: /);
      expect(bad.stderr.toString()).not.toMatch(/\n\s+at /); // no stack trace
    }
    const range = await run(join(EXAMPLES, 'tcp-migrate.mjs'), ['--size', '0']);
    expect(range.code).toBe(2);
    expect(range.stderr.toString()).toMatch(/^--size must be/);
  });

  it('demo.mjs migrates 6 rounds and verifies each', async () => {
    const out = await example('demo.mjs');
    expect(out).toContain('xbzrle demo: 32 MiB of guest RAM, 6 rounds');
    expect(out).toContain('receiver RAM verified equal to sender RAM after every round: OK');
  });

  it('tcp-migrate.mjs rebuilds the image into a file over TCP', async () => {
    const out = await example('tcp-migrate.mjs');
    expect(out).toMatch(/^tcp-migrate: 16 MiB of guest RAM, 5 rounds, 127\.0\.0\.1:\d+ -> .*pc\.ram\.bin$/m);
    // One line per round: round, MiB on the wire, PAGE, ZERO, XBZRLE, unchanged, receiver.
    const rounds = [...out.matchAll(/^\s+(\d+)\s+([\d.]+) MiB\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+) MiB$/gm)];
    expect(rounds.map((m) => Number(m[1]))).toEqual([1, 2, 3, 4, 5]);
    expect(Number(rounds[0]![5])).toBe(0); // round 1: nothing in the cache yet, no XBZRLE
    for (const m of rounds.slice(1)) {
      expect(Number(m[5])).toBeGreaterThan(0); // later rounds: deltas
      expect(Number(m[2])).toBeLessThan(Number(rounds[0]![2]) / 10); // and far fewer bytes
    }
    expect(out).toContain('verified: receiver file equals the sender image: OK');
  });

  it('tcp-migrate.mjs takes --size and --rounds', async () => {
    const out = await example('tcp-migrate.mjs', ['--size', '2', '--rounds', '2']);
    expect(out).toContain('2 MiB of guest RAM, 2 rounds');
    expect(out).toContain('verified: receiver file equals the sender image: OK');
  });

  it('tcp-migrate.mjs takes --cache-size: a cache smaller than the image resends pages whole', async () => {
    const wire = (out: string): number[] => [...out.matchAll(/^\s+(\d+)\s+([\d.]+) MiB\s+(\d+)/gm)].map((m) => Number(m[2]));
    const whole = await example('tcp-migrate.mjs', ['--size', '4', '--rounds', '2']);
    const small = await example('tcp-migrate.mjs', ['--size', '4', '--rounds', '2', '--cache-size', '1']);
    for (const out of [whole, small]) expect(out).toContain('verified: receiver file equals the sender image: OK');
    expect(wire(small)[1]!).toBeGreaterThan(3 * wire(whole)[1]!);
    const bad = await run(join(EXAMPLES, 'tcp-migrate.mjs'), ['--cache-size', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.toString()).toMatch(/^--cache-size must be/);
  });

  it('snapshot-chain.mjs writes base + deltas and restores every point', async () => {
    const out = await example('snapshot-chain.mjs');
    expect(out).toContain('snapshot-chain: 8 MiB image, base + 5 deltas');
    for (let k = 1; k <= 5; k++) expect(out).toMatch(new RegExp(`delta-00${k}\\.xd .* snapshot ${k}: XBZRLE \\d+`));
    for (let k = 0; k <= 5; k++) expect(out).toMatch(new RegExp(`restore point ${k}: base \\+ ${k} deltas .* OK$`, 'm'));
    expect(out).toContain('verified: 6 restore point(s) equal the original snapshots: OK');
  });

  it('snapshot-chain.mjs deltas are independent files that `xbzrle patch` applies in a chain', async () => {
    const dir = join(scratch, 'chain');
    const out = await example('snapshot-chain.mjs', ['--size', '2', '--snapshots', '3', '--restore', '2', '--keep', dir]);
    expect(out).toContain('verified: 1 restore point(s) equal the original snapshots: OK');
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { deltas: string[]; sha256: string[] };
    expect(manifest.deltas).toEqual(['delta-001.xd', 'delta-002.xd', 'delta-003.xd']);
    let prev = join(dir, 'base.img');
    expect(sha256(await readFile(prev))).toBe(manifest.sha256[0]);
    for (const [i, delta] of manifest.deltas.entries()) {
      const next = join(dir, `cli-${i + 1}.img`);
      const r = await run(CLI, ['patch', prev, join(dir, delta), '-o', next, '-q']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(sha256(await readFile(next))).toBe(manifest.sha256[i + 1]);
      prev = next;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('http-upload.mjs: the server rebuilds the uploaded image and refuses bad bodies', async () => {
    const out = await example('http-upload.mjs');
    expect(out).toMatch(/^http-upload: 8 MiB image, 4 rounds, POST http:\/\/127\.0\.0\.1:\d+\/upload$/m);
    expect(out).toContain('server answered 200');
    expect(out).toContain('ok   server image sha256');
    expect(out).toContain('server answered 400 ERR_RAM_TRUNCATED');
    expect(out).toContain('ok   junk upload refused at its first record with 400');
    expect(out).not.toContain('FAIL');
    expect(out).toContain('verified: server rebuilt the image; bad uploads refused: OK');
  });

  it('qemu-inspect.mjs reads the bundled QEMU 7.2 capture and agrees with QEMU', async () => {
    const out = await example('qemu-inspect.mjs');
    expect(out).toContain('sparse-c32m.mig.gz (gunzipped)');
    expect(out).toMatch(/machine\s+pc-i440fx-7\.2/);
    expect(out).toMatch(/blocks\s+8/);
    expect(out).toMatch(/pc\.ram\s+32\.00 MiB\s+sha256 c454155b7c9d2c40/);
    expect(out).toContain('ram sections START 1, PART 21, END 1 (all RAM read)');
    expect(out).toMatch(/stopped at\s+byte \d+: FULL section "timer"/);
    expect(out).toContain('"normal": 8317');
    expect(out).toContain('"XBZRLE": 60404');
    expect(out).not.toContain('FAIL');
    expect(out).toContain('verified against sparse-c32m.query.json: OK');
  });

  it('qemu-inspect.mjs takes a plain (not gzipped) file path and --count-only', async () => {
    const mig = join(scratch, 'mixed.mig');
    await writeFile(mig, gunzipSync(await readFile(join(ROOT, 'test/fixtures/qemu-7.2/mixed-c8m.mig.gz'))));
    const out = await example('qemu-inspect.mjs', [mig, '--count-only']);
    expect(out).toContain(`qemu-inspect: ${mig}\n`);
    expect(out).toContain('ram sections START 1, PART 16, END 1 (all RAM read)');
    expect(out).toContain('"ZERO": 14536');
    expect(out).not.toContain('sha256');
    await rm(mig);
  });

  it('stats-live.mjs prints live stats lines and checks the result', async () => {
    const started = Date.now();
    const out = await example('stats-live.mjs');
    expect(Date.now() - started).toBeLessThan(10_000);
    const lines = [...out.matchAll(/^\s+([\d.]+)s\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) \(([\d.]+)\)\s+([\d.]+) \(([\d.]+)\)$/gm)];
    expect(lines.length).toBeGreaterThanOrEqual(3);
    const pages = lines.map((m) => Number(m[3]));
    expect(pages).toEqual([...pages].sort((a, b) => a - b)); // counters only grow
    expect(out).toMatch(/---- setCacheSize\(32 MiB\) -> 32 MiB ----/);
    expect(out).not.toContain('FAIL');
    expect(out).toMatch(/verified: \d+ rounds, [\d.]+ MiB sent, stats consistent: OK/);
  });
});
