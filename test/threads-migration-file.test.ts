/**
 * readQemuMigration with `threads`: the file's RAM records applied on the
 * worker pool give the image, the counters and the errors of one thread,
 * including errors the reader itself raises after a queued delta that fails.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryPageStore, readQemuMigration, XbzrleError } from '../lib/index.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { disposeKernelPools, getKernelPool } from '../lib/codec/wasm/pool.js';
import { buildRecordFile } from './helpers/qemu-file.js';
import { buildRecords } from './helpers/streams.js';

const PS = 4096;
const engine = getEngine();
const poolAvailable = getKernelPool(engine, 2) !== null;
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});

/** A zero run of 8192 bytes: past the end of a 4 KiB page. */
const BAD = new Uint8Array([0x80, 0x40, 0x01, 0x00]);

/** A migration file whose START section holds a delta that fails (queued for the workers), then more sections. */
function file(): Buffer {
  const start = buildRecords((w) => {
    w.memSize([{ id: 'pc.ram', length: 16 * PS }]);
    w.page('pc.ram', 0, new Uint8Array(PS).fill(7), 0);
    w.xbzrle('pc.ram', 0, BAD, 0, BAD.length);
    w.eos();
  });
  const part = buildRecords((w) => {
    for (let i = 1; i < 8; i++) w.page('pc.ram', i * PS, new Uint8Array(PS).fill(i), 0);
    w.eos();
  });
  return buildRecordFile('pc-i440fx-7.2', start, [part], buildRecords((w) => w.eos()));
}

async function failure(bytes: Uint8Array, threads: number): Promise<string> {
  const err = await readQemuMigration(bytes, { store: new MemoryPageStore(), threads }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(XbzrleError);
  return `${(err as XbzrleError).code}@${(err as XbzrleError).offset}: ${(err as XbzrleError).message}`;
}

describe.skipIf(!poolAvailable)('readQemuMigration on several threads', () => {
  it('reports a queued delta that fails before the reader’s own error at a cut', async () => {
    const cut = file().subarray(0, file().length - 200);
    const one = await failure(cut, 1);
    expect(one).toMatch(/^ERR_XBZRLE_CORRUPT@/);
    expect(await failure(cut, 4)).toBe(one);
  });

  it('reports a queued delta that fails before a bad section footer', async () => {
    const f = file();
    const at = f.indexOf(Buffer.from([0x7e, 0, 0, 0, 2]), 20); // the START section's footer
    f[at + 4] = 9; // names another section
    const one = await failure(f, 1);
    expect(one).toMatch(/^ERR_XBZRLE_CORRUPT@/);
    expect(await failure(f, 4)).toBe(one);
  });

  it('refuses a thread count out of range before reading', async () => {
    await expect(readQemuMigration(new Uint8Array(0), { threads: 0 })).rejects.toThrow(RangeError);
  });
});
