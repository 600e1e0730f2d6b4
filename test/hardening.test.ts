import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { MemoryPageStore, readQemuMigration, XbzrleDecodeStream, XbzrleEncodeStream, XbzrleError, type PageStore } from '../lib/index.js';
import { concat, hex, randomBytes, rng } from './helpers/bytes.js';
import { buildRecords } from './helpers/streams.js';

const PS = 4096;
const EOS = '0000000000000010';

const build = buildRecords;

async function decodeError(bytes: Uint8Array, options: ConstructorParameters<typeof XbzrleDecodeStream>[0] = {}): Promise<XbzrleError | undefined> {
  return pipeline(Readable.from([bytes]), new XbzrleDecodeStream({ emitPages: false, ...options })).then(
    () => undefined,
    (e: XbzrleError) => e,
  );
}

describe('resource limits', () => {
  it('refuses a MEM_SIZE claiming 2^60 bytes before allocating or declaring anything', async () => {
    let declared = false;
    const store: PageStore = { get: () => {}, put: () => {}, declare: () => void (declared = true) };
    const err = await decodeError(hex('1000000000000004 03 72616d 1000000000000000'), { store });
    expect(err?.code).toBe('ERR_LIMIT_EXCEEDED');
    expect(err?.offset).toBe(0);
    expect(declared).toBe(false);
  });

  it('refuses a MEM_SIZE total over maxImageSize (16 TiB by default), and offsets past it without MEM_SIZE', async () => {
    const big = build((w) => w.memSize([{ id: 'ram', length: 2 ** 45 }]));
    expect((await decodeError(big))?.code).toBe('ERR_LIMIT_EXCEEDED');
    const ok = build((w) => {
      w.memSize([{ id: 'ram', length: 1 << 20 }]);
      w.eos();
    });
    expect(await decodeError(ok, { maxImageSize: 1 << 20 })).toBeUndefined();
    expect((await decodeError(ok, { maxImageSize: (1 << 20) - PS }))?.code).toBe('ERR_LIMIT_EXCEEDED');
    const far = hex(`0000100000000002 03 72616d 00 ${EOS}`); // offset 16 TiB, no MEM_SIZE
    expect((await decodeError(far))?.code).toBe('ERR_LIMIT_EXCEEDED');
    // Several MEM_SIZE lists count together.
    const two = build((w) => {
      w.memSize([{ id: 'a', length: 1 << 20 }]);
      w.memSize([{ id: 'b', length: 1 << 20 }]);
      w.eos();
    });
    expect((await decodeError(two, { maxImageSize: 1.5 * (1 << 20) }))?.code).toBe('ERR_LIMIT_EXCEEDED');
  });

  it('refuses more than maxBlocks blocks', async () => {
    const many = build((w) => w.memSize(Array.from({ length: 10 }, (_, i) => ({ id: `b${i}`, length: PS }))));
    expect((await decodeError(many, { maxBlocks: 9 }))?.code).toBe('ERR_LIMIT_EXCEEDED');
  });

  it('stops at maxOutput bytes of pages', async () => {
    const pages = build((w) => {
      for (let i = 0; i < 10; i++) w.zero('ram', i * PS, 0);
      w.eos();
    });
    expect(await decodeError(pages, { maxOutput: 10 * PS })).toBeUndefined();
    const err = await decodeError(pages, { maxOutput: 9 * PS });
    expect(err?.code).toBe('ERR_LIMIT_EXCEEDED');
    expect(err?.offset).toBe(13 + 8 * 9); // the tenth record
  });

  it('readQemuMigration refuses a hostile MEM_SIZE too', async () => {
    const mig = hex(`5145564d 00000003 07 00000001 6d 01 00000002 03 72616d 00000000 00000004 1000000000000004 03 72616d 1000000000000000`);
    await expect(readQemuMigration(mig)).rejects.toMatchObject({ code: 'ERR_LIMIT_EXCEEDED' });
  });
});

describe('trailing data after the last EOS', () => {
  const good = build((w) => {
    w.page('ram', 0, new Uint8Array(PS).fill(5), 0);
    w.eos();
  });

  it('is an error by default', async () => {
    expect((await decodeError(concat([good, hex('deadbeef')])))?.code).toBe('ERR_RAM_TRUNCATED');
    expect((await decodeError(concat([good, hex('0000000000000001')])))?.code).toBe('ERR_RAM_UNKNOWN_FLAGS');
  });

  it('is ignored and counted with allowTrailingData', async () => {
    for (const garbage of [hex('deadbeef'), hex('0000000000000001 ffff'), new Uint8Array(10000).fill(0xff)]) {
      const store = new MemoryPageStore();
      const dec = new XbzrleDecodeStream({ store, emitPages: false, allowTrailingData: true });
      await pipeline(Readable.from([concat([good, garbage.subarray(0, 3)]), garbage.subarray(3)]), dec);
      expect(dec.trailingBytes).toBe(garbage.length);
      expect(store.read('ram')[0]).toBe(5);
    }
  });

  it('still fails on a bad record that is not after an EOS, or a bad delta', async () => {
    const noEos = build((w) => w.page('ram', 0, new Uint8Array(PS), 0));
    expect((await decodeError(concat([noEos, hex('0000000000000001')]), { allowTrailingData: true }))?.code).toBe('ERR_RAM_UNKNOWN_FLAGS');
    const badDelta = concat([good, hex(`0000000000000060 01 0002 0000 ${EOS}`)]);
    expect((await decodeError(badDelta, { allowTrailingData: true }))?.code).toBe('ERR_XBZRLE_CORRUPT');
  });
});

describe('faults', () => {
  it('a decoder whose socket is reset mid-record fails cleanly, without hanging', async () => {
    const { bytes } = await (async () => {
      const enc = new XbzrleEncodeStream();
      const chunks: Uint8Array[] = [];
      enc.on('data', (c: Uint8Array) => chunks.push(c));
      enc.end({ block: 'ram', offset: 0, data: randomBytes(64 * PS, rng(1)) });
      await new Promise((r) => enc.on('end', r));
      return { bytes: concat(chunks) };
    })();
    let result!: Promise<unknown>;
    const server = createServer((socket: Socket) => {
      result = pipeline(socket, new XbzrleDecodeStream({ emitPages: false })).then(
        () => 'finished',
        (e: NodeJS.ErrnoException) => e.code,
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((r) => client.on('connect', r));
    client.write(bytes.subarray(0, 100_003)); // cut inside a PAGE record
    await new Promise((r) => setTimeout(r, 50));
    client.resetAndDestroy();
    const outcome = await Promise.race([result, new Promise((r) => setTimeout(() => r('hang'), 5000))]);
    server.close();
    expect(['ECONNRESET', 'ERR_RAM_TRUNCATED']).toContain(outcome);
  });
});
