import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage, verifyDelta } from '../lib/delta/index.js';
import { applyInMemory, chunked, concat, encodeInMemory, makePair } from './delta-images.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string): string => join(dir, n);

describe('stream forms', () => {
  it('the reader takes the delta in 1-byte and random chunks', async () => {
    const { oldImg, newImg } = makePair(41, 40, 4096, 44);
    const { delta } = await encodeInMemory(oldImg, newImg, { frameSize: 4096 });
    for (const how of ['bytes', 'random', 'whole'] as const) {
      const { image, stats } = await applyInMemory(oldImg, delta, how);
      expect(Buffer.compare(image, newImg)).toBe(0);
      expect(stats.deltaBytes).toBe(delta.length);
    }
  });

  it('diff from a piped OLD to a function sink; patch from a piped delta', async () => {
    const { oldImg, newImg } = makePair(42, 60, 4096, 58);
    writeFileSync(p('old'), oldImg);
    writeFileSync(p('new'), newImg);
    const chunks: Uint8Array[] = [];
    const st = await diffImages({ size: oldImg.length, stream: chunked(oldImg, 'random', 4) }, p('new'), (c) => void chunks.push(c.slice()));
    expect(st.refNew + st.refOld).toBeGreaterThan(0);
    const delta = concat(chunks);
    // same delta as from files, except OLD's digest is in the trailer only
    const fromFile = await diffImages(p('old'), p('new'), p('d'));
    expect(st.newDigest).toBe(fromFile.newDigest);
    expect(st.oldDigest).toBe(fromFile.oldDigest);
    const pipe = new PassThrough();
    const done = patchImage(p('old'), pipe, p('out'));
    for await (const c of chunked(delta, 'random', 8)) pipe.write(c);
    pipe.end();
    await done;
    expect(Buffer.compare(readFileSync(p('out')), newImg)).toBe(0);
    // a Node readable of the file, and a Node writable as diff output
    const st2 = await verifyDelta(createReadStream(p('d'), { highWaterMark: 777 }));
    expect(st2.deltaBytes).toBe(fromFile.deltaBytes);
    const sink = new PassThrough();
    const got: Buffer[] = [];
    sink.on('data', (c: Buffer) => got.push(c));
    await diffImages(p('old'), p('new'), sink);
    expect(Buffer.compare(Buffer.concat(got), readFileSync(p('d')))).toBe(0);
  });
});
