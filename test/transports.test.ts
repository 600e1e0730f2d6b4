import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryPageStore, XbzrleDecodeStream, XbzrleEncodeStream } from '../lib/index.js';
import { randomBytes, rng, sameBytes } from './helpers/bytes.js';
import { CLI } from './helpers/cli.js';

const PS = 4096;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xbzrle-tr-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Three rounds of a 4 MiB image with sparse changes. */
function rounds(): Uint8Array[] {
  const rand = rng(77);
  const out = [randomBytes(4 << 20, rand)];
  for (let r = 1; r < 3; r++) {
    const img = out[r - 1]!.slice();
    for (let i = 0; i < img.length; i += 1531) img[i] = img[i]! ^ 0x5a;
    out.push(img);
  }
  return out;
}

function writeRounds(enc: XbzrleEncodeStream, images: Uint8Array[]): void {
  images.forEach((img, r) => {
    for (let off = 0; off < img.length; off += 1 << 20) enc.write({ block: 'ram', offset: off, data: img.subarray(off, off + (1 << 20)) });
    if (r < images.length - 1) enc.sync();
  });
  enc.end();
}

describe('streams over real transports', () => {
  it('carries rounds over a TCP socket on 127.0.0.1', async () => {
    const images = rounds();
    const store = new MemoryPageStore();
    let done!: Promise<void>;
    const server = createServer((socket: Socket) => {
      done = pipeline(socket, new XbzrleDecodeStream({ store, emitPages: false }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const client = connect(port, '127.0.0.1');
    const enc = new XbzrleEncodeStream({ blocks: [{ id: 'ram', length: 4 << 20 }] });
    const sending = pipeline(enc, client);
    writeRounds(enc, images);
    await sending;
    await new Promise((r) => setTimeout(r, 0));
    await done;
    server.close();
    expect(sameBytes(store.read('ram'), images[2]!)).toBe(true);
    expect(enc.stats.records.XBZRLE).toBe(2048);
  });

  it('writes to a file with fs streams and reads it back', async () => {
    const images = rounds();
    const path = join(dir, 'rounds.xs');
    const enc = new XbzrleEncodeStream();
    const writing = pipeline(enc, createWriteStream(path));
    writeRounds(enc, images);
    await writing;
    const store = new MemoryPageStore();
    for await (const _page of createReadStream(path, { highWaterMark: 1000 }).pipe(new XbzrleDecodeStream({ store }))) {
      // consumed with for await
    }
    expect(sameBytes(store.read('ram'), images[2]!)).toBe(true);
  });
});

describe('xbzrle progress bar', () => {
  it('draws bytes, percentage, rate and ETA on stderr with --progress, and nothing with -q', async () => {
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    await writeFile(a, new Uint8Array(8 << 20));
    await writeFile(b, new Uint8Array(8 << 20).fill(1, 0, PS));
    const env = { ...process.env, XBZRLE_PROGRESS_DELAY: '0' };
    const shown = spawnSync(process.execPath, [CLI, 'diff', a, b, '-o', join(dir, 'd1'), '--progress'], { env, encoding: 'utf8' });
    expect(shown.status).toBe(0);
    expect(shown.stderr).toMatch(/\r.*diff \[#*\.*\] +\d+% .* \/ 8\.00 MiB .*\/s +ETA/);
    const quiet = spawnSync(process.execPath, [CLI, 'diff', a, b, '-o', join(dir, 'd2'), '--progress', '-q'], { env, encoding: 'utf8' });
    expect(quiet.status).toBe(0);
    expect(quiet.stderr).toBe('');
    const off = spawnSync(process.execPath, [CLI, 'diff', a, b, '-o', join(dir, 'd3'), '--no-progress'], { env, encoding: 'utf8' });
    expect(off.stderr).not.toMatch(/\r/);
  });
});
