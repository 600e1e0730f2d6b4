/**
 * readQemuMigration into a FilePageStore (PAGE records borrowed from the input's
 * chunks) from an async iterable that reuses ONE buffer, refilled and scribbled over as
 * soon as the next chunk is asked for, must rebuild the same image as from the bytes.
 * Chunk sizes sweep so that section headers/footers and records get cut everywhere.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilePageStore, readQemuMigration } from '../lib/index.js';
import { ByteSource } from '../lib/qemu/byte-source.js';
import { gunzipFile } from './helpers/fixtures.js';
import { buildRecordFile } from './helpers/qemu-file.js';
import { buildRecords, throughOneBuffer } from './helpers/streams.js';
import { tempDirEach } from './helpers/temp-dir.js';

const PS = 4096;
const PAGES = 32;
let dir = '';
tempDirEach('xbzrle-mig-headers-', (d) => (dir = d));

/** START: MEM_SIZE + every page in file order; PARTs: a few PAGE records in file order each. */
function file(): Buffer {
  const start = buildRecords((w) => {
    w.memSize([{ id: 'pc.ram', length: PAGES * PS }]);
    for (let p = 0; p < PAGES; p++) w.page('pc.ram', p * PS, new Uint8Array(PS).fill(p + 1), 0);
    w.eos();
  });
  const parts: Uint8Array[] = [];
  for (let k = 0; k < 8; k++) {
    parts.push(
      buildRecords((w) => {
        for (let p = k; p < PAGES; p += 3) w.page('pc.ram', p * PS, new Uint8Array(PS).fill(0x40 + k * 8 + (p % 7)), 0);
        w.eos();
      }),
    );
  }
  return buildRecordFile('pc-i440fx-7.2', start, parts, buildRecords((w) => w.eos()));
}

describe('readQemuMigration from one reused buffer', () => {
  it('ByteSource.need joins a field cut across chunks from the bytes the input gave (not from a buffer it refilled since)', async () => {
    // 8 bytes 00 01 .. 07 in chunks of 3 through one buffer. As readRamBody does at an EOS: the
    // parser's unread rest of its chunk (a view of the caller's buffer) goes back to the source,
    // then the section footer/header (a u32 here, at byte 2) is required across the next chunk.
    const src = new ByteSource(throughOneBuffer(Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 3));
    const first = (await src.nextChunk())!;
    src.putBack(first.subarray(2), 2);
    await src.require(4, 'test'); // asks for the next chunk while holding a view of byte 2 of the first
    expect(src.u32().toString(16)).toBe('2030405');
  });

  it('QEMU 10.0 edge-c32m in chunks of 4130 and 4139 bytes: pc.ram is the RAM QEMU rebuilt (no footer error, no early stop)', async () => {
    const fixtures = join(__dirname, 'fixtures', 'qemu-10.0');
    const mig = gunzipFile(join(fixtures, 'edge-c32m.mig.gz'));
    const truth = gunzipFile(join(fixtures, 'edge-c32m.pc.ram.gz'));
    const bad: string[] = [];
    for (const size of [4130, 4139]) {
      const out = join(dir, String(size));
      const store = new FilePageStore({ dir: out, cacheSize: 1 << 20 });
      try {
        const info = await readQemuMigration(throughOneBuffer(mig, size), { store });
        if (!info.ramComplete || !(await readFile(join(out, 'pc.ram.bin'))).equals(truth)) bad.push(`${size}: ramComplete ${info.ramComplete}, stopped at ${JSON.stringify(info.stoppedAt)}`);
      } catch (err) {
        await store.close();
        bad.push(`${size}: ${String(err)}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('rebuilds the image the bytes give, for chunk sizes cutting the container fields anywhere', async () => {
    const mig = file();
    const refPath = join(dir, 'ref.bin');
    const ref = new FilePageStore({ path: () => refPath, cacheSize: 8 * PS });
    await readQemuMigration(mig, { store: ref });
    const truth = await readFile(refPath);
    const bad: number[] = [];
    const sizes = [...Array.from({ length: 40 }, (_, i) => 4100 + i * 97), 8210, 8211, 12317, 20000];
    for (const size of sizes) {
      const path = join(dir, `img-${size}.bin`);
      const store = new FilePageStore({ path: () => path, cacheSize: 8 * PS });
      const info = await readQemuMigration(throughOneBuffer(mig, size), { store }).catch((e: unknown) => e);
      const ok = !(info instanceof Error) && (info as { ramComplete: boolean }).ramComplete && (await readFile(path)).equals(truth);
      if (!ok) bad.push(size);
      if (info instanceof Error) await store.close();
    }
    expect(bad, 'chunk sizes giving another image (or an error)').toEqual([]);
  });
});
