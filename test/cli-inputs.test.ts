/**
 * Inputs that are not plain files, and inputs that end badly: FIFOs holding
 * compressed data, a stdin that stays open after bad bytes, zstd data that
 * expands enormously, folders and pipes where an image file is needed, block
 * names no file can carry, outputs in folders that cannot be made. In-process
 * (`runMain`), except a FIFO read by the built bin and a stdin pipe that stays
 * open (`npm test` builds first); plus the zstd reader.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as zstd from '@bokuweb/zstd-wasm';
import { describe, expect, it } from 'vitest';
import { zstdDecompressed } from '../lib/cli/zstd-input.js';
import { blockFileName } from '../lib/index.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { scratchFolders, CLI, runCli, runMain, type CliResult } from './helpers/cli.js';
import { buildRecords } from './helpers/streams.js';

const PS = 4096;
const scratch = scratchFolders('xbzrle-inputs-');
const freshDir = scratch.fresh;

function oneLine(r: CliResult, pattern: RegExp): void {
  expect(r.code, `stderr: ${r.stderr}`).toBe(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at |xbzrle-tmp|ERR_[A-Z_]+:/);
}

/** A two-round encode stream of a small image (a file). */
async function stream(dir: string): Promise<{ image: Uint8Array; path: string }> {
  const image = randomBytes(8 * PS, rng(5));
  const a = join(dir, 'a.img');
  writeFileSync(a, image);
  const path = join(dir, 's.xs');
  expect((await runMain(['encode', a, '-o', path, '-q'])).code).toBe(0);
  return { image, path };
}

describe('compressed input through a FIFO', () => {
  it('a gzip or zstd stream in a named pipe is decompressed like a file', async () => {
    const dir = freshDir('fifo');
    const { image, path } = await stream(dir);
    await zstd.init();
    for (const [name, bytes] of [
      ['s.gz', gzipSync(readFileSync(path))],
      ['s.zst', zstd.compress(readFileSync(path), 3)],
    ] as const) {
      const packed = join(dir, name);
      writeFileSync(packed, bytes);
      const fifo = join(dir, `${name}.fifo`);
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      const writer = spawn('sh', ['-c', `cat "${packed}" > "${fifo}"`]);
      const out = join(dir, `${name}.img`);
      const r = await runCli(['decode', fifo, '-o', out, '-q']);
      writer.kill();
      expect(r.code, r.stderr).toBe(0);
      expect(Buffer.from(readFileSync(out)).equals(Buffer.from(image))).toBe(true);
    }
  });
});

describe('a stdin that stays open', () => {
  it('exits right after reporting bad input, without waiting for the writer to close stdin', async () => {
    for (const args of [['decode', '-o', join(freshDir('open'), 'x')], ['stat']]) {
      const started = Date.now();
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdin.on('error', () => undefined);
      child.stdin.write('garbage!garbage!'); // and the pipe stays open
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 10_000);
        child.on('close', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      child.stdin.destroy();
      expect(code, `still running after 10 s; stderr: ${stderr}`).toBe(1);
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(stderr).toMatch(/^xbzrle: stdin: not a RAM record stream/);
    }
  });
});

describe('zstd input that expands enormously', () => {
  it('is decompressed only as fast as the reader takes it (memory bounded by the reader, not the data)', async () => {
    await zstd.init();
    const raw = new Uint8Array(64 << 20); // 64 MiB of zeros: a few KB compressed
    const packed = zstd.compress(raw, 19);
    expect(packed.length).toBeLessThan(64 * 1024);
    const source = Readable.from([Buffer.from(packed)]);
    const out = zstdDecompressed(source);
    let total = 0;
    let maxBuffered = 0;
    for await (const chunk of out) {
      total += (chunk as Uint8Array).length;
      maxBuffered = Math.max(maxBuffered, out.readableLength);
      if (total % (8 << 20) < (chunk as Uint8Array).length) await new Promise((r) => setTimeout(r, 5)); // a slow reader now and then
    }
    expect(total).toBe(raw.length);
    expect(maxBuffered).toBeLessThan(4 << 20);
  });

  it('fails with a message on corrupt data', async () => {
    const out = zstdDecompressed(Readable.from([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8])]));
    await expect((async () => {
      for await (const _ of out) void _;
    })()).rejects.toThrow(/zstd-compressed input is (corrupt|refused)/);
  });
});

describe('image inputs of encode', () => {
  it('a folder, a pipe, a missing file and a cache below one page are named for what they are', async () => {
    const dir = freshDir('enc');
    const a = join(dir, 'a.img');
    writeFileSync(a, new Uint8Array(4 * PS).fill(1));
    oneLine(await runMain(['encode', dir, '-o', join(dir, 'x')]), new RegExp(`^xbzrle: ${dir}: is a directory\\n$`));
    const fifo = join(dir, 'p');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    oneLine(await runMain(['encode', fifo, '-o', join(dir, 'x')]), /p: not a regular file \(to encode from a pipe, give it as stdin with --image-size N\)/);
    oneLine(await runMain(['encode', join(dir, 'nope'), '-o', join(dir, 'x')]), /nope: no such file or directory\n$/);
    oneLine(await runMain(['encode', a, '--cache-size', '1k', '-o', join(dir, 'x')]), /^xbzrle: --cache-size 1k: at least one page \(4096 bytes\) for the page cache\n$/);
    expect(readdirSync(dir).sort()).toEqual(['a.img', 'p']);
  });
});

describe('block names and output folders', () => {
  it('a block name holding NUL gets a file name with "_" in its place', async () => {
    expect(blockFileName('x\0y/z')).toBe('x_y_z.bin');
    const dir = freshDir('nul');
    const bytes = buildRecords((w) => {
      w.memSize([{ id: 'x\0y', length: PS }]);
      w.page('x\0y', 0, new Uint8Array(PS).fill(3), 0);
      w.eos();
    });
    const input = join(dir, 'nul.xs');
    writeFileSync(input, bytes);
    const r = await runMain(['extract', input, '-o', join(dir, 'out'), '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(join(dir, 'out'))).toEqual(['x_y.bin']);
  });

  it('an output folder that cannot be made is an error, not a hang', async () => {
    const dir = freshDir('proc');
    const { path } = await stream(dir);
    const r = await runMain(['extract', path, '-o', '/proc/xbzrle-test-dir']);
    expect(r.signal).toBeNull();
    oneLine(r, /^xbzrle: \/proc\/xbzrle-test-dir: /);
    expect(existsSync('/proc/xbzrle-test-dir')).toBe(false);
  });
});
