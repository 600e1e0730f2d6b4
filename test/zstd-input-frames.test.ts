/**
 * The zstd input reader against damaged and hostile frames: content checksums
 * verified, windows over the limit refused before the decoder allocates them,
 * frames of tiny blocks under a large window refused in bounded time,
 * skippable frames skipped, frames split anywhere. Frames are built by hand
 * (raw and RLE blocks), so every header field is what the test says.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as zstd from '@bokuweb/zstd-wasm';
import xxhash from 'xxhash-wasm';
import { describe, expect, it } from 'vitest';
import { ZSTD_MAX_WINDOW, zstdDecompressed } from '../lib/cli/zstd-input.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { runMain, scratchFolders, tempFilesIn } from './helpers/cli.js';

const scratch = scratchFolders('xbzrle-zstd-frames-');
const { h64Raw } = await xxhash();

type Block = { raw: Uint8Array } | { rle: number; size: number };

interface FrameSpec {
  /** Window descriptor byte (default 0x58: 2 MiB); ignored with `single`. */
  wd?: number;
  /** Single-segment frame whose content size is this (4-byte field, or `fcs` bytes). */
  single?: number;
  /** Bytes of the content-size field of a single-segment frame: 1, 2 (size - 256 stored), 4 or 8. */
  fcs?: 1 | 2 | 4 | 8;
  blocks: Block[];
  /** Content checksum: written (the right one), `'bad'` (its first byte flipped), or none. */
  checksum?: boolean | 'bad';
  /** The 1-byte dictionary id written with flag 0x01 (default 7). */
  dict?: number;
  /** Extra descriptor bits (e.g. 0x08, the reserved one; 0x01, a 1-byte dictionary id of 7). */
  flags?: number;
}

const content = (blocks: Block[]): Uint8Array => {
  const parts = blocks.map((b) => ('raw' in b ? b.raw : new Uint8Array(b.size).fill(b.rle)));
  return Buffer.concat(parts);
};

function frame(spec: FrameSpec): Uint8Array {
  const out: number[] = [0x28, 0xb5, 0x2f, 0xfd];
  const single = spec.single !== undefined;
  const check = spec.checksum !== undefined && spec.checksum !== false;
  const fcs = spec.fcs ?? 4;
  const fcsFlag = { 1: 0, 2: 1, 4: 2, 8: 3 }[fcs];
  out.push((single ? (fcsFlag << 6) | 0x20 : 0) | (check ? 0x04 : 0) | (spec.flags ?? 0));
  if (!single) out.push(spec.wd ?? 0x58);
  if (((spec.flags ?? 0) & 3) === 1) out.push(spec.dict ?? 7); // a dictionary id
  if (single) {
    const stored = spec.single! - (fcs === 2 ? 256 : 0);
    for (let i = 0; i < fcs; i++) out.push(i < 4 ? (stored >>> (8 * i)) & 0xff : 0);
  }
  spec.blocks.forEach((b, i) => {
    const last = i === spec.blocks.length - 1 ? 1 : 0;
    const [type, size] = 'raw' in b ? [0, b.raw.length] : [1, b.size];
    const v = last | (type << 1) | (size << 3);
    out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff);
    if ('raw' in b) out.push(...b.raw);
    else out.push(b.rle);
  });
  if (check) {
    const sum = Number(h64Raw(content(spec.blocks)) & 0xffffffffn);
    const bytes = [sum & 0xff, (sum >>> 8) & 0xff, (sum >>> 16) & 0xff, sum >>> 24];
    if (spec.checksum === 'bad') bytes[0] = bytes[0]! ^ 0x01;
    out.push(...bytes);
  }
  return Uint8Array.from(out);
}

function skippable(n: number): Uint8Array {
  return Uint8Array.from([0x53, 0x2a, 0x4d, 0x18, n & 0xff, (n >>> 8) & 0xff, 0, 0, ...new Uint8Array(n).fill(0xee)]);
}

/** Decompresses `bytes` given in `pieces` (sizes, repeated); resolves to the output or rejects. */
async function inflate(bytes: Uint8Array, pieces: number[] = [bytes.length]): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, pieces[i % pieces.length]!);
    chunks.push(Buffer.from(bytes.subarray(at, at + n)));
    at += n;
  }
  const out: Uint8Array[] = [];
  for await (const c of zstdDecompressed(Readable.from(chunks))) out.push(c as Uint8Array);
  return Buffer.concat(out);
}

const r = rng(11);
const data = randomBytes(5000, r);
const blocks: Block[] = [{ raw: data.subarray(0, 3000) }, { rle: 0x41, size: 900 }, { raw: data.subarray(3000) }];

describe('zstd input: content checksums', () => {
  it('a frame whose content matches its checksum decodes, in one piece or byte by byte', async () => {
    const f = frame({ blocks, checksum: true });
    expect(await inflate(f)).toEqual(content(blocks));
    expect(await inflate(f, [1])).toEqual(content(blocks));
  });

  it('a flipped content byte (which no block structure catches) or checksum byte is refused', async () => {
    const f = frame({ blocks, checksum: true });
    const flipped = f.slice();
    flipped[20] = flipped[20]! ^ 0x10; // inside the first raw block
    await expect(inflate(flipped)).rejects.toThrow(/content of the frame at byte 0 does not match its checksum/);
    await expect(inflate(frame({ blocks, checksum: 'bad' }), [7, 1, 300])).rejects.toThrow(/does not match its checksum/);
  });

  it('checks each frame of several, skippable frames skipped, frames with and without checksums', async () => {
    const b2: Block[] = [{ raw: data.subarray(0, 100) }];
    const all = Buffer.concat([frame({ blocks, checksum: true }), skippable(40), frame({ blocks: b2 }), skippable(0), frame({ blocks: b2, checksum: true })]);
    const want = Buffer.concat([content(blocks), content(b2), content(b2)]);
    for (const pieces of [[all.length], [1], [5, 13, 1, 1024]]) expect(await inflate(all, pieces)).toEqual(want);
    const bad = Buffer.concat([frame({ blocks, checksum: true }), skippable(40), frame({ blocks: b2, checksum: 'bad' })]);
    await expect(inflate(bad)).rejects.toThrow(new RegExp(`frame at byte ${frame({ blocks, checksum: true }).length + 48} does not match`));
  });

  it('what zstd itself writes (no checksum) still decodes, split anywhere', async () => {
    await zstd.init();
    const raw = Buffer.from(randomBytes(150_000, rng(3)));
    raw.fill(0, 50_000, 100_000);
    const packed = zstd.compress(raw, 3);
    expect(await inflate(packed)).toEqual(raw);
    expect(await inflate(packed, [1, 2, 3, 1000, 17])).toEqual(raw);
  });
});

describe('zstd input: what a reader refuses before the decoder sees it', () => {
  it(`a window over ${ZSTD_MAX_WINDOW >> 20} MiB, or a single-segment frame as large, is refused at once`, async () => {
    const t0 = performance.now();
    await expect(inflate(frame({ wd: 0xa7, blocks }))).rejects.toThrow(/needs a 1920 MiB window, over the 8 MiB this reader keeps.*zstd -dc --long=31/);
    await expect(inflate(frame({ single: 1 << 30, blocks }))).rejects.toThrow(/needs a 1024 MiB window/);
    await expect(inflate(frame({ wd: 0x69, blocks }))).rejects.toThrow(/needs a 9 MiB window/); // 8 MiB + 1/8
    expect(performance.now() - t0).toBeLessThan(2000);
    // The limit itself is taken: 8 MiB (0x68).
    expect(await inflate(frame({ wd: 0x68, blocks, checksum: true }))).toEqual(content(blocks));
  });

  it('single-segment frames with 1-, 2- (size - 256), 4- and 8-byte content sizes, and a dictionary id of 0, decode', async () => {
    const body: Block[] = [{ raw: data.subarray(0, 200) }, { raw: data.subarray(200, 700) }];
    const size = content(body).length;
    for (const fcs of [2, 4, 8] as const) expect(await inflate(frame({ single: size, fcs, blocks: body, checksum: true }), [1, 3])).toEqual(content(body));
    const small: Block[] = [{ raw: data.subarray(0, 200) }];
    expect(await inflate(frame({ single: 200, fcs: 1, blocks: small, checksum: true }))).toEqual(content(small));
    expect(await inflate(frame({ blocks: small, flags: 0x01, dict: 0, checksum: true }))).toEqual(content(small));
    // A declared content size the blocks do not give (no checksum to tell otherwise).
    await expect(inflate(frame({ single: size + 1, blocks: body }))).rejects.toThrow(/holds 700 bytes, not the 701 its header declares/);
    await expect(inflate(frame({ single: 100, fcs: 1, blocks: [{ rle: 5, size: 99 }] }))).rejects.toThrow(/holds 99 bytes, not the 100/);
  });

  it('tiny blocks under a large window are refused in bounded time (each block moves the whole window)', async () => {
    const tiny: Block[] = Array.from({ length: 1000 }, (_, i) => ({ raw: Uint8Array.of(i & 0xff) }));
    const t0 = performance.now();
    await expect(inflate(frame({ wd: 0x68, blocks: tiny }))).rejects.toThrow(/refused at the frame at byte 0: its frames and blocks are too small for their windows \(1 frames so far/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    // Many empty frames under 8 MiB windows: each allocated and moved once.
    const empties = Buffer.concat(Array.from({ length: 1000 }, () => frame({ wd: 0x68, blocks: [{ raw: new Uint8Array(0) }] })));
    await expect(inflate(empties)).rejects.toThrow(/its frames and blocks are too small for their windows \(\d+ frames so far/);
    // A file appended to frame by frame, as `zstd` writes from a pipe (a full window each): 100 frames pass.
    const lines = Array.from({ length: 100 }, (_, i) => Buffer.from(`line ${i}\n`));
    const appended = Buffer.concat(lines.map((l) => frame({ wd: 0x68, blocks: [{ raw: l }], checksum: true })));
    expect(await inflate(appended)).toEqual(Buffer.concat(lines));
    // The same blocks under a small window are fine.
    expect(await inflate(frame({ wd: 0x00, blocks: tiny }))).toEqual(content(tiny));
  });

  it('a reserved header bit, a reserved block type, a dictionary, a block over 128 KiB, bad magic and a cut frame are refused', async () => {
    await expect(inflate(frame({ blocks, flags: 0x08 }))).rejects.toThrow(/reserved header bit/);
    await expect(inflate(frame({ blocks, flags: 0x01 }))).rejects.toThrow(/needs dictionary 7/);
    const reserved = frame({ blocks: [{ raw: Uint8Array.of(1) }] });
    reserved[6] = reserved[6]! | 0x06; // block type 3
    await expect(inflate(reserved)).rejects.toThrow(/reserved block type/);
    await expect(inflate(frame({ blocks: [{ rle: 1, size: (128 << 10) + 1 }] }))).rejects.toThrow(/over the frame's block limit/);
    await expect(inflate(Buffer.concat([frame({ blocks }), Uint8Array.of(1, 2, 3, 4, 5)]))).rejects.toThrow(/no zstd frame at byte/);
    const whole = frame({ blocks, checksum: true });
    for (const cut of [3, 5, 6, 9, 200, whole.length - 2]) await expect(inflate(whole.subarray(0, cut))).rejects.toThrow(/cut short|truncated/);
  });
});

describe('zstd input through the CLI', () => {
  it('decode of a .zst whose page bytes were damaged exits 1 with one line and writes nothing', async () => {
    const dir = scratch.fresh('cli');
    const image = join(dir, 'a.img');
    writeFileSync(image, randomBytes(16 * 4096, rng(9)));
    const plain = join(dir, 's.xs');
    expect((await runMain(['encode', image, '-o', plain, '-q'])).code).toBe(0);
    const stream = readFileSync(plain);
    const parts: Block[] = [];
    for (let at = 0; at < stream.length; at += 50_000) parts.push({ raw: stream.subarray(at, at + 50_000) });
    const good = join(dir, 'good.zst');
    writeFileSync(good, frame({ blocks: parts, checksum: true }));
    const out = join(dir, 'out.img');
    expect((await runMain(['decode', good, '-o', out, '-q'])).code).toBe(0);
    expect(readFileSync(out)).toEqual(readFileSync(image));
    // One byte of a page's data flipped: still a well-formed stream, only the checksum tells.
    const bad = join(dir, 's.zst');
    const flipped = frame({ blocks: parts, checksum: true });
    flipped[40_000] = flipped[40_000]! ^ 0x01;
    writeFileSync(bad, flipped);
    const out2 = join(dir, 'out2.img');
    const res = await runMain(['decode', bad, '-o', out2]);
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/s\.zst: zstd-compressed input is corrupt: the content of the frame at byte 0 does not match its checksum/);
    expect(existsSync(out2)).toBe(false);
    expect(tempFilesIn(dir)).toEqual([]);
  });
});
