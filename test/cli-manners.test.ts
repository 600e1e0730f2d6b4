/**
 * What a new user of the `xbzrle` command meets in the first hour (issue 13):
 * help for a command, usage hints naming the command, one output flag,
 * plurals, errors naming what the user typed, compressed and foreign inputs
 * named for what they are, no folder left by a failed extract, an encoder
 * cache that holds the image, and a diff delta given to decode. In-process
 * (`runMain`), except what needs a process of its own: runs as an unprivileged
 * user and a SIGTERM (the built bin; `npm test` builds first).
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as zstd from '@bokuweb/zstd-wasm';
import { describe, expect, it } from 'vitest';
import { randomBytes, rng } from './helpers/bytes.js';
import { scratchFolders, CLI, PACKAGE_JSON, runMain, tempFilesIn, type CliResult } from './helpers/cli.js';
import { diffImages } from '../lib/index.js';

const PS = 4096;
const scratch = scratchFolders('xbzrle-manners-', 0o755);
const freshDir = scratch.fresh;

function put(dir: string, name: string, data: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

function oneLine(r: CliResult, pattern: RegExp): void {
  expect(r.code, `stderr: ${r.stderr}`).toBe(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toMatch(/xbzrle-tmp|EACCES|ERR_[A-Z_]+:/);
}

/** An image and a copy with a few bytes changed (a delta of XBZRLE records). */
function pair(dir: string, pages = 16): { a: string; b: string } {
  const old = randomBytes(pages * PS, rng(7));
  const next = old.slice();
  next[5 * PS + 100]! ^= 0xff;
  next[9 * PS + 7]! ^= 0x55;
  return { a: put(dir, 'a.img', old), b: put(dir, 'b.img', next) };
}

const VERSION = (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;

describe('help and usage', () => {
  it("'xbzrle help CMD' and 'xbzrle CMD --help' print that command's help", async () => {
    for (const cmd of ['diff', 'patch', 'stat', 'extract', 'encode', 'decode', 'report']) {
      const a = await runMain(['help', cmd]);
      const b = await runMain([cmd, '--help']);
      expect(a.code).toBe(0);
      expect(a.stdout.toString()).toMatch(new RegExp(`^usage: xbzrle ${cmd} `));
      expect(a.stdout.toString()).toBe(b.stdout.toString());
    }
    expect((await runMain(['help'])).stdout.toString()).toMatch(/^usage: xbzrle <command>/);
    oneLine(await runMain(['help', 'nope']), /^xbzrle: unknown command "nope"\nTry 'xbzrle --help'\.\n$/);
  });

  it("a usage error names the command at hand: Try 'xbzrle CMD --help'", async () => {
    const r = await runMain(['diff', '--bogus']);
    oneLine(r, /^xbzrle: Unknown option '--bogus'\nTry 'xbzrle diff --help'\.\n$/);
    const s = await runMain(['stat', 'a', 'b']);
    oneLine(s, /Try 'xbzrle stat --help'\.\n$/);
    const u = await runMain(['frobnicate']);
    oneLine(u, /Try 'xbzrle --help'\.\n$/);
  });

  it("'xbzrle CMD --version' prints the version", async () => {
    for (const cmd of ['diff', 'stat', 'decode']) {
      const r = await runMain([cmd, '--version']);
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toBe(`xbzrle ${VERSION}\n`);
    }
  });
});

describe('one output flag', () => {
  it('-o/--output works on extract and decode, --out stays an alias, and two different outputs are refused', async () => {
    const dir = freshDir('output');
    const { a } = pair(dir);
    const stream = join(dir, 's.xs');
    expect((await runMain(['encode', a, '-o', stream, '-q'])).code).toBe(0);
    for (const flag of ['-o', '--output', '--out']) {
      const img = join(dir, `img${flag}`);
      const r = await runMain(['decode', stream, flag, img, '-q']);
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(img).equals(readFileSync(a))).toBe(true);
    }
    const fixture = join('test', 'fixtures', 'qemu-7.2', 'sparse-c32m.mig.gz');
    for (const flag of ['-o', '--out']) {
      const out = join(dir, `x${flag}`);
      const r = await runMain(['extract', fixture, flag, out, '-q']);
      expect(r.code, r.stderr).toBe(0);
      expect(readdirSync(out)).toContain('pc.ram.bin');
    }
    oneLine(await runMain(['decode', stream, '-o', join(dir, 'p'), '--out', join(dir, 'q')]), /two outputs/);
  });
});

describe('report', () => {
  it('writes one HTML file for a QEMU migration file, refuses to overwrite it without -f', async () => {
    const dir = freshDir('report');
    const out = join(dir, 'r.html');
    const r = await runMain(['report', join('test', 'fixtures', 'qemu-7.2', 'sparse-c32m.mig.gz'), '-o', out, '-q']);
    expect(r.code, r.stderr).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toMatch(/^<!doctype html>/i);
    expect(html).toContain('pc.ram');
    oneLine(await runMain(['report', join('test', 'fixtures', 'qemu-7.2', 'sparse-c32m.mig.gz'), '-o', out]), /already exists/);
  });
});

describe('plurals', () => {
  it('1 round, 1 page', async () => {
    const dir = freshDir('plural');
    const { a, b } = pair(dir);
    const enc = await runMain(['encode', a, '-o', join(dir, 'one.xs')]);
    expect(enc.stderr).toMatch(/: 1 round of /);
    const two = await runMain(['encode', a, b, '-o', join(dir, 'two.xs')]);
    expect(two.stderr).toMatch(/: 2 rounds of /);
    const one = new Uint8Array(readFileSync(a));
    one[3]! ^= 1;
    const c = put(dir, 'c.img', one);
    expect((await runMain(['diff', a, c, '-o', join(dir, 'd'), '--format', 'qemu'])).code).toBe(0);
    const p = await runMain(['patch', a, join(dir, 'd'), '-o', join(dir, 'c2.img')]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).not.toMatch(/\b1 pages\b/);
    expect(p.stderr).toMatch(/\b1 page\b/);
  });
});

/** Runs the CLI as an unprivileged user (uid/gid 65534), where permissions apply even when the tests run as root. */
function runAsNobody(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'], cwd: scratch.root() });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/** Whether an unprivileged user can run dist/cli.cjs: every folder on its path searchable, the file readable. */
const cliReadable = (() => {
  const parts = CLI.split('/');
  for (let i = 2; i <= parts.length; i++) {
    const path = parts.slice(0, i).join('/') || '/';
    const mode = statSync(path).mode;
    if ((mode & (i === parts.length ? 0o004 : 0o001)) === 0) return false;
  }
  return true;
})();

describe('errors name what the user typed', () => {
  it.skipIf(!isRoot || !cliReadable)('an unwritable output or folder: OUTPUT: permission denied (no temp file name)', async () => {
    const dir = freshDir('perm');
    const { a, b } = pair(dir);
    chmodSync(a, 0o644);
    chmodSync(b, 0o644);
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    const stream = join(dir, 's.xs');
    expect((await runMain(['encode', a, '-o', stream, '-q'])).code).toBe(0);
    chmodSync(stream, 0o644);
    const out = join(locked, 'out.img');
    oneLine(await runAsNobody(['diff', a, b, '-o', out]), new RegExp(`^xbzrle: ${out}: permission denied\\n$`));
    oneLine(await runAsNobody(['encode', a, '-o', out]), new RegExp(`^xbzrle: ${out}: permission denied\\n$`));
    oneLine(await runAsNobody(['decode', stream, '-o', out]), new RegExp(`^xbzrle: ${out}: permission denied\\n$`));
    oneLine(await runAsNobody(['patch', a, stream, '-o', out]), new RegExp(`^xbzrle: ${out}: permission denied\\n$`));
    const folder = join(locked, 'sub');
    oneLine(await runAsNobody(['extract', stream, '-o', folder]), new RegExp(`^xbzrle: ${folder}: permission denied\\n$`));
    expect(readdirSync(locked)).toEqual([]);
    chownSync(locked, 65534, 65534);
    chmodSync(locked, 0o755);
  });

  it('--cache-size too large names the flag and the largest value', async () => {
    const dir = freshDir('cache');
    const { a } = pair(dir);
    oneLine(await runMain(['encode', a, '-o', join(dir, 'x'), '--cache-size', '100G']), /^xbzrle: --cache-size 100G: at most 4G \(4294967296 bytes\)/);
    oneLine(await runMain(['decode', a, '-o', join(dir, 'y'), '--cache-size', '100G']), /^xbzrle: --cache-size 100G: at most \d+[kMGT]? \(\d+ bytes\)/);
  });
});

describe('inputs named for what they are', () => {
  it('stat, extract, patch and decode read gzip-compressed input as it is', async () => {
    const dir = freshDir('gzip');
    const { a, b } = pair(dir);
    const delta = join(dir, 'd.xd');
    expect((await runMain(['diff', a, b, '-o', delta, '--format', 'qemu'])).code).toBe(0);
    const gz = put(dir, 'd.xd.gz', gzipSync(readFileSync(delta)));
    const st = await runMain(['stat', gz, '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect(JSON.parse(st.stdout.toString()).records.XBZRLE).toBe(2);
    const piped = await runMain(['stat', '--json'], { input: readFileSync(gz) });
    expect(piped.code, piped.stderr).toBe(0);
    const p = await runMain(['patch', a, gz, '-o', join(dir, 'b2.img'), '-q']);
    expect(p.code, p.stderr).toBe(0);
    expect(readFileSync(join(dir, 'b2.img')).equals(readFileSync(b))).toBe(true);
    const stream = join(dir, 's.xs');
    expect((await runMain(['encode', a, b, '-o', stream, '-q'])).code).toBe(0);
    const sgz = put(dir, 's.xs.gz', gzipSync(readFileSync(stream)));
    const d = await runMain(['decode', sgz, '-o', join(dir, 'final.img'), '-q']);
    expect(d.code, d.stderr).toBe(0);
    expect(readFileSync(join(dir, 'final.img')).equals(readFileSync(b))).toBe(true);
    const x = await runMain(['extract', join('test', 'fixtures', 'qemu-7.2', 'sparse-c32m.mig.gz'), '-o', join(dir, 'x'), '-q']);
    expect(x.code, x.stderr).toBe(0);
  });

  it('stat, patch and decode read zstd-compressed input as it is; corrupt gzip and zstd input is named', async () => {
    const dir = freshDir('zstd');
    const { a, b } = pair(dir);
    const delta = join(dir, 'd.xd');
    expect((await runMain(['diff', a, b, '-o', delta, '--format', 'qemu'])).code).toBe(0);
    await zstd.init();
    const zst = put(dir, 'd.xd.zst', zstd.compress(readFileSync(delta), 3));
    const st = await runMain(['stat', zst, '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect(JSON.parse(st.stdout.toString()).records.XBZRLE).toBe(2);
    const p = await runMain(['patch', a, '-', '-o', join(dir, 'b2.img'), '-q'], { input: readFileSync(zst) });
    expect(p.code, p.stderr).toBe(0);
    expect(readFileSync(join(dir, 'b2.img')).equals(readFileSync(b))).toBe(true);
    const stream = join(dir, 's.xs');
    expect((await runMain(['encode', a, b, '-o', stream, '-q'])).code).toBe(0);
    const szst = put(dir, 's.xs.zst', zstd.compress(readFileSync(stream), 3));
    const d = await runMain(['decode', szst, '-o', join(dir, 'final.img'), '-q']);
    expect(d.code, d.stderr).toBe(0);
    expect(readFileSync(join(dir, 'final.img')).equals(readFileSync(b))).toBe(true);
    const junk = put(dir, 'junk.zst', Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 1, 2]));
    oneLine(await runMain(['stat', junk]), new RegExp(`^xbzrle: ${junk}: zstd-compressed input is corrupt or truncated`));
    const gz = gzipSync(readFileSync(delta));
    const cut = put(dir, 'cut.gz', gz.subarray(0, gz.length - 9));
    oneLine(await runMain(['stat', cut]), new RegExp(`^xbzrle: ${cut}: gzip-compressed input is corrupt or truncated`));
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('xz, bzip2 and lz4 input, and compressed images, are named with the command that decompresses them', async () => {
    const dir = freshDir('other');
    const zst = put(dir, 'd.lz4', Uint8Array.from([0x04, 0x22, 0x4d, 0x18, 0, 0, 0, 0, 1, 2]));
    const xz = put(dir, 'd.xz', Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0, 1]));
    const bz = put(dir, 'd.bz2', Uint8Array.from([0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26]));
    oneLine(await runMain(['stat', zst]), new RegExp(`^xbzrle: ${zst}: lz4-compressed: decompress it first \\(lz4 -d\\)\\n$`));
    oneLine(await runMain(['stat'], { input: readFileSync(xz) }), /^xbzrle: stdin: xz-compressed: decompress it first \(xz -d\)\n$/);
    oneLine(await runMain(['decode', bz, '-o', join(dir, 'o')]), /bzip2-compressed: decompress it first \(bunzip2\)/);
    oneLine(await runMain(['extract', zst, '-o', join(dir, 'dir')]), /lz4-compressed/);
    const { a: img } = pair(dir);
    await zstd.init();
    const izst = put(dir, 'a.img.zst', zstd.compress(readFileSync(img), 1));
    oneLine(await runMain(['encode', izst, '-o', join(dir, 'e2')]), /zstd-compressed: decompress it first \(zstd -d\)/);
    const { a } = pair(dir);
    const agz = put(dir, 'a.img.gz', gzipSync(readFileSync(a)));
    oneLine(await runMain(['encode', agz, '-o', join(dir, 'e')]), new RegExp(`^xbzrle: ${agz}: gzip-compressed: decompress it first \\(gunzip\\)\\n$`));
    expect(existsSync(join(dir, 'dir'))).toBe(false);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it('a raw memory image given to stat is "not a RAM record stream or QEMU migration file"', async () => {
    const dir = freshDir('raw');
    const { a } = pair(dir);
    const zero = put(dir, 'zero.img', new Uint8Array(8 * PS));
    for (const f of [a, zero]) oneLine(await runMain(['stat', f]), new RegExp(`^xbzrle: ${f}: not a RAM record stream or QEMU migration file \\(byte 0 starts no record\\)\\n$`));
    oneLine(await runMain(['stat', put(dir, 'empty', new Uint8Array(0))]), /empty: not a RAM record stream or QEMU migration file/);
  });
});

describe('extract leaves no folder it created', () => {
  it('when it fails', async () => {
    const dir = freshDir('extract-fail');
    const bad = put(dir, 'bad.mig', Uint8Array.from([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3, 0x09]));
    const out = join(dir, 'new', 'deeper');
    oneLine(await runMain(['extract', bad, '-o', out]), /bad\.mig/);
    expect(readdirSync(dir)).toEqual(['bad.mig']);
    // A folder that existed stays.
    mkdirSync(join(dir, 'kept'));
    oneLine(await runMain(['extract', bad, '-o', join(dir, 'kept')]), /bad\.mig/);
    expect(existsSync(join(dir, 'kept'))).toBe(true);
  });

  it('when it is interrupted', async () => {
    const dir = freshDir('extract-signal');
    const out = join(dir, 'made');
    const child = spawn(process.execPath, [CLI, 'extract', '-', '-o', out], { stdio: ['pipe', 'pipe', 'pipe'] });
    // The start of a QEMU file, then nothing: extract waits for more input.
    child.stdin.write(Uint8Array.from([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3]));
    for (let i = 0; i < 100 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(out)).toBe(true);
    const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await closed).toBe(143);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('encode: a cache that holds the image', () => {
  it('defaults to the image size and warns when a given cache holds less than one image', async () => {
    const dir = freshDir('encode-cache');
    const pages = 512; // 2 MiB
    const r = rng(3);
    const base = randomBytes(pages * PS, r);
    const rounds = [base];
    for (let k = 1; k < 4; k++) {
      const next = rounds[k - 1]!.slice();
      for (let p = 0; p < pages; p++) next[p * PS + ((k * 13) % PS)]! ^= 1;
      rounds.push(next);
    }
    const files = rounds.map((d, k) => put(dir, `r${k}.img`, d));
    const whole = await runMain(['encode', ...files, '-o', join(dir, 'whole.xs')]);
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stderr).not.toMatch(/warning/);
    const small = await runMain(['encode', ...files, '-o', join(dir, 'small.xs'), '--cache-size', '1M']);
    expect(small.code, small.stderr).toBe(0);
    expect(small.stderr).toMatch(/^xbzrle: warning: the page cache holds 1\.00 MiB, less than the image \(2\.00 MiB\): pages that fall out of it are sent whole \(--cache-size 2M holds it\)\n/);
    const quiet = await runMain(['encode', ...files, '-o', join(dir, 'q.xs'), '--cache-size', '1M', '-q']);
    expect(quiet.stderr).toBe('');
    const size = (f: string): number => readFileSync(join(dir, f)).length;
    // Rounds 2-4 are one-byte deltas with the whole image cached; half of them whole pages with half of it.
    expect(size('small.xs')).toBeGreaterThan(2 * size('whole.xs'));
  });
});

describe('decode of a diff delta', () => {
  it('names a delta file of the xbzrle format and says that patch applies it', async () => {
    const dir = freshDir('decode-container');
    const { a, b } = pair(dir);
    const delta = join(dir, 'd.xbd');
    await diffImages(a, b, delta);
    expect(readFileSync(delta).subarray(0, 4)).toEqual(Buffer.from([0x89, 0x58, 0x42, 0x5a]));
    oneLine(await runMain(['decode', delta, '-o', join(dir, 'out.img')]), new RegExp(`^xbzrle: ${delta}: a delta file made by 'xbzrle diff': apply it with 'xbzrle patch BASE ${delta} -o NEW'\\n$`));
    oneLine(await runMain(['decode', '-o', join(dir, 'out.img')], { input: readFileSync(delta) }), /^xbzrle: stdin: a delta file made by 'xbzrle diff': apply it with 'xbzrle patch BASE - -o NEW'\n$/);
    expect(readdirSync(dir).sort()).toEqual(['a.img', 'b.img', 'd.xbd']);
  });


  it('says that patch applies a delta, and writes nothing', async () => {
    const dir = freshDir('decode-delta');
    const { a, b } = pair(dir);
    const delta = join(dir, 'd.xd');
    expect((await runMain(['diff', a, b, '-o', delta, '--format', 'qemu'])).code).toBe(0);
    const out = join(dir, 'out.img');
    oneLine(await runMain(['decode', delta, '-o', out]), new RegExp(`^xbzrle: ${delta}: a delta against a base image .*: apply it with 'xbzrle patch BASE ${delta} -o NEW'\\n$`));
    expect(existsSync(out)).toBe(false);
    expect(tempFilesIn(dir)).toEqual([]);
  });
});
