// MULTIFD_FLUSH like the version that wrote it, and multifd main channels (issue 16 part 3).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemoryPageStore, readQemuMigration, RecordWriter, XbzrleDecodeStream, XbzrleError, type RamBlock } from '../lib/index.js';
import { concat } from './helpers/bytes.js';
import { buildRecordFile } from './helpers/qemu-file.js';
import { buildRecords, decodeChunks } from './helpers/streams.js';
import { gunzipFile } from './helpers/fixtures.js';

const DIR = fileURLToPath(new URL('./fixtures/qemu-10.0/', import.meta.url));
const PS = 4096;
const FLUSH = Buffer.from('0000000000000200', 'hex');
const EOS = Buffer.from('0000000000000010', 'hex');

const records = (fn: (w: RecordWriter) => void): Buffer => Buffer.from(buildRecords(fn, PS));

const BLOCKS: RamBlock[] = [{ id: 'ram', length: 4 * PS }];
const memSize = records((w) => w.memSize(BLOCKS));
const pages = records((w) => {
  w.page('ram', 0, new Uint8Array(PS).fill(7), 0);
  w.zero('ram', PS);
});

/** A QEMU 8.1-style stream: MULTIFD_FLUSH before the EOS of START and END, and one after a full pass. */
function withFlushes(machine: string): Buffer {
  return buildRecordFile(machine, Buffer.concat([memSize, FLUSH, EOS]), [Buffer.concat([pages, FLUSH, EOS])], Buffer.concat([FLUSH, EOS]));
}

describe('MULTIFD_FLUSH records', () => {
  it.each(['pc-i440fx-8.1', 'pc-q35-9.2', 'pc-i440fx-10.0'])('accepted by default from %s (QEMU ≥ 8.1 loads them), counted', async (machine) => {
    const store = new MemoryPageStore();
    const info = await readQemuMigration(withFlushes(machine), { store });
    expect(info.ramComplete).toBe(true);
    expect(info.stats.multifdFlushes).toBe(3);
    expect(info.stats.toJSON().records).toEqual({ PAGE: 1, ZERO: 1, XBZRLE: 0, MEM_SIZE: 1, EOS: 3, MULTIFD_FLUSH: 3 });
    expect(store.read('ram')[0]).toBe(7);
    expect(info.multifdMainChannel).toBeNull();
  });

  it.each(['pc-i440fx-7.2', 'pc-i440fx-8.0', 'microvm'])('refused from %s (QEMU ≤ 8.0 refuses them) with the offset and the way around it', async (machine) => {
    const file = withFlushes(machine);
    const err = await readQemuMigration(file).then(
      () => undefined,
      (e: unknown) => e as XbzrleError,
    );
    expect(err).toBeInstanceOf(XbzrleError);
    expect(err!.code).toBe('ERR_RAM_UNSUPPORTED');
    expect(err!.message).toMatch(/allowMultifdFlush/);
    expect(file.subarray(err!.offset!, err!.offset! + 8)).toEqual(FLUSH);
  });

  it('allowMultifdFlush or qemuVersion decide when the machine type cannot', async () => {
    const file = withFlushes('pc-i440fx-7.2');
    expect((await readQemuMigration(file, { allowMultifdFlush: true })).stats.multifdFlushes).toBe(3);
    expect((await readQemuMigration(withFlushes('microvm'), { qemuVersion: '8.1' })).stats.multifdFlushes).toBe(3);
    await expect(readQemuMigration(withFlushes('pc-i440fx-10.0'), { allowMultifdFlush: false })).rejects.toMatchObject({ code: 'ERR_RAM_UNSUPPORTED' });
  });

  it('a MULTIFD_FLUSH in an unversioned stream raises the version guess to 8.1', async () => {
    const info = await readQemuMigration(withFlushes('microvm'), { allowMultifdFlush: true });
    expect(info.qemuVersion).toMatchObject({ text: '8.1', from: 'stream' });
  });

  it('XbzrleDecodeStream: refused by default, skipped and counted with allowMultifdFlush', async () => {
    const stream = Buffer.concat([memSize, FLUSH, pages, FLUSH, EOS]);
    const run = async (opts: object): Promise<XbzrleDecodeStream> => (await decodeChunks([stream], opts)).dec;
    await expect(run({})).rejects.toMatchObject({ code: 'ERR_RAM_UNSUPPORTED', offset: memSize.length });
    const dec = await run({ allowMultifdFlush: true });
    expect(dec.stats.multifdFlushes).toBe(2);
    expect(dec.stats.toJSON().records.MULTIFD_FLUSH).toBe(2);
    expect(dec.stats.transferred).toBe(stream.length);
  });
});

describe('a multifd main channel', () => {
  it('the real QEMU 10.0 capture: read successfully, said for what it is, ramComplete false; its counters match query-migrate', async () => {
    const mig = gunzipFile(DIR + 'multifd-sparse.mig.gz');
    const q = JSON.parse(readFileSync(DIR + 'multifd-sparse.query.json', 'utf8'))['query-migrate'].ram;
    const info = await readQemuMigration(mig);
    expect(info.ramComplete).toBe(false);
    expect(info.multifdMainChannel).toMatch(/^a multifd main channel: pages travel in the other multifd channels/);
    expect(info.multifdMainChannel).toMatch(/13 MULTIFD_FLUSH and 19 EOS records only/);
    expect(info.sections).toEqual({ start: 1, part: 17, end: 1 });
    expect(info.stats.multifdFlushes).toBe(13);
    expect(info.qemuVersion?.text).toBe('10.0');
    const json = info.stats.toQueryMigrate();
    expect(json.ram['precopy-bytes']).toBe(q['precopy-bytes']);
    expect(json.ram['downtime-bytes']).toBe(q['downtime-bytes']);
    // QEMU's transferred is this channel plus the multifd channels' bytes.
    expect(json.ram.transferred + q['multifd-bytes']).toBe(q.transferred);
    expect(json.ram.normal).toBe(0);
  });

  it('a main channel without flushes (older machine types flush after each section) is recognised too', async () => {
    const info = await readQemuMigration(buildRecordFile('pc-i440fx-7.2', Buffer.concat([memSize, EOS]), [EOS, EOS], EOS));
    expect(info.ramComplete).toBe(false);
    expect(info.multifdMainChannel).toMatch(/0 MULTIFD_FLUSH and 4 EOS records only/);
  });
});
