import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { MemoryPageStore, RecordWriter, XbzrleDecodeStream, XbzrleError, type DecodedPage, type RamBlock } from '../lib/index.js';
import { concat, hex, split } from './helpers/bytes.js';
import { buildRecords, decodeChunks } from './helpers/streams.js';

const PS = 4096;
const EOS = '0000000000000010';
const name = (s: string): string => s.length.toString(16).padStart(2, '0') + Buffer.from(s).toString('hex');

const build = buildRecords;

const memSize = (blocks: RamBlock[]): Uint8Array => build((w) => w.memSize(blocks));

function decode(bytes: Uint8Array, how: 'whole' | 'bytes' | 'random' = 'whole', store = new MemoryPageStore()): ReturnType<typeof decodeChunks> {
  return decodeChunks(split(bytes, how, 5, 64), { store });
}

/** Asserts that decoding fails with `code` at `offset`, whole and split into single bytes. */
async function expectFailure(bytes: Uint8Array, code: string, offset?: number): Promise<XbzrleError> {
  let last: XbzrleError | undefined;
  for (const how of ['whole', 'bytes'] as const) {
    const err = await decode(bytes, how).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, `${how}: expected ${code}`).toBeInstanceOf(XbzrleError);
    expect((err as XbzrleError).code).toBe(code);
    if (offset !== undefined) expect((err as XbzrleError).offset).toBe(offset);
    last = err as XbzrleError;
  }
  return last!;
}

describe('XbzrleDecodeStream rejects what QEMU rejects', () => {
  it('ERR_RAM_UNKNOWN_FLAGS: FULL (0x01), two page types at once, undefined bits', async () => {
    await expectFailure(hex('0000000000000001'), 'ERR_RAM_UNKNOWN_FLAGS', 0);
    await expectFailure(hex(`000000000000000a ${name('ram')} 00`), 'ERR_RAM_UNKNOWN_FLAGS', 0);
    await expectFailure(hex(`${EOS} 0000000000000400`), 'ERR_RAM_UNKNOWN_FLAGS', 8);
  });

  it('resolves the block before the flag dispatch, as QEMU does', async () => {
    const bytes = concat([memSize([{ id: 'ram', length: PS }]), hex(`000000000000000a ${name('rom')}`)]);
    await expectFailure(bytes, 'ERR_RAM_UNKNOWN_BLOCK');
  });

  it('ERR_RAM_UNSUPPORTED: compressed pages, RDMA hooks, multifd flushes', async () => {
    const e = await expectFailure(hex(`0000000000000100 ${name('ram')} 00000010`), 'ERR_RAM_UNSUPPORTED', 0);
    expect(e.message).toMatch(/compress/i);
    await expectFailure(hex('0000000000000080'), 'ERR_RAM_UNSUPPORTED', 0);
    await expectFailure(hex('0000000000000200'), 'ERR_RAM_UNSUPPORTED', 0);
  });

  it('rejects compressed pages before resolving their block, as QEMU 7.2 does', async () => {
    await expectFailure(hex('0000000000000120 00'), 'ERR_RAM_UNSUPPORTED', 0); // CONTINUE, no block yet
    const head = memSize([{ id: 'ram', length: PS }]);
    await expectFailure(concat([head, hex(`0000000000000100 ${name('rom')} 00000010`)]), 'ERR_RAM_UNSUPPORTED', head.length);
    await expectFailure(hex(`0000000000000100 05 6162`), 'ERR_RAM_UNSUPPORTED', 0); // name cut off
    await expectFailure(hex(`0000000000000108 ${name('ram')}`), 'ERR_RAM_UNSUPPORTED', 0);
  });

  it('refuses block names that are not valid UTF-8 (names must map one to one)', async () => {
    await expectFailure(hex(`0000000000002004 01 ff 0000000000001000 01 fe 0000000000001000`), 'ERR_RAM_MEM_SIZE', 8);
    await expectFailure(hex(`0000000000000002 01 ff 00 ${EOS}`), 'ERR_RAM_UNKNOWN_BLOCK', 8);
  });

  it('leaves the store untouched (no new block, no new extent) when a delta is rejected', async () => {
    const store = new MemoryPageStore();
    const bytes = hex(`0000000000003040 ${name('ram')} 01 0003 050000 ${EOS}`);
    const err = await decode(bytes, 'whole', store).then(() => undefined, (e: XbzrleError) => e);
    expect(err?.code).toBe('ERR_XBZRLE_CORRUPT');
    expect(store.blocks()).toEqual([]);
    expect(store.memoryUsage).toBe(0);
  });

  it('ERR_RAM_NO_BLOCK: CONTINUE before any block name', async () => {
    await expectFailure(hex(`${EOS} 0000000000000022 00 ${EOS}`), 'ERR_RAM_NO_BLOCK', 8);
  });

  it('ERR_RAM_UNKNOWN_BLOCK: a name the MEM_SIZE list did not declare (offset at the name)', async () => {
    const head = memSize([{ id: 'ram', length: PS }]);
    await expectFailure(concat([head, hex(`0000000000000002 ${name('rom')} 00 ${EOS}`)]), 'ERR_RAM_UNKNOWN_BLOCK', head.length + 8);
  });

  it('ERR_RAM_UNKNOWN_BLOCK: a CONTINUE of a block named before a MEM_SIZE list that left it out (no offset or size check skipped)', async () => {
    // 'x' named before any MEM_SIZE, then a list of 'ram' only, then ZERO|CONTINUE at 1 PiB.
    const first = hex(`0000000000000002 ${name('x')} 00`);
    const list = memSize([{ id: 'ram', length: PS }]);
    const at = first.length + list.length;
    await expectFailure(concat([first, list, hex(`0004000000000022 07 ${EOS}`)]), 'ERR_RAM_UNKNOWN_BLOCK', at);
  });

  it('ERR_RAM_OFFSET: an offset at or past the block length', async () => {
    const head = memSize([{ id: 'ram', length: 2 * PS }]);
    await expectFailure(concat([head, hex(`0000000000002002 ${name('ram')} 00 ${EOS}`)]), 'ERR_RAM_OFFSET', head.length);
    // Without MEM_SIZE, offsets must still be representable (below 2^53).
    await expectFailure(hex(`0020000000000002 ${name('ram')} 00 ${EOS}`), 'ERR_RAM_OFFSET', 0);
  });

  it('ERR_RAM_BAD_ENCODING: an XBZRLE encoding byte other than 0x01', async () => {
    await expectFailure(hex(`0000000000000040 ${name('ram')} 02 0003 050001 ${EOS}`), 'ERR_RAM_BAD_ENCODING', 12);
  });

  it('ERR_RAM_LENGTH: an XBZRLE length over the page size', async () => {
    await expectFailure(hex(`0000000000000040 ${name('ram')} 01 1001`), 'ERR_RAM_LENGTH', 13);
  });

  it('ERR_XBZRLE_CORRUPT: a bad delta, with the stream offset of the bad element, leaving the page as it was', async () => {
    const store = new MemoryPageStore();
    store.put('ram', 0, new Uint8Array(PS).fill(0x11));
    // zrun 5, nzrun 1 (aa), then a zero zrun after the first pair: invalid at delta byte 3.
    const bytes = hex(`0000000000000040 ${name('ram')} 01 0006 0501aa000101 ${EOS}`);
    const err = await decode(bytes, 'whole', store).then(() => undefined, (e: XbzrleError) => e);
    expect(err?.code).toBe('ERR_XBZRLE_CORRUPT');
    expect(err?.offset).toBe(15 + 3);
    expect(store.read('ram').every((v) => v === 0x11)).toBe(true);
    await expectFailure(bytes, 'ERR_XBZRLE_CORRUPT', 18);
  });

  it('ERR_RAM_MEM_SIZE: a block longer than the rest of the total, a duplicate, an empty name, a zero length', async () => {
    await expectFailure(hex(`0000000000001004 ${name('a')} 0000000000002000`), 'ERR_RAM_MEM_SIZE', 8);
    await expectFailure(hex(`0000000000002004 ${name('a')} 0000000000001000 ${name('a')} 0000000000001000`), 'ERR_RAM_MEM_SIZE', 18);
    await expectFailure(hex(`0000000000001004 00 0000000000001000`), 'ERR_RAM_MEM_SIZE', 8);
    await expectFailure(hex(`0000000000001004 ${name('a')} 0000000000000000`), 'ERR_RAM_MEM_SIZE', 8);
  });

  describe('ERR_RAM_TRUNCATED', () => {
    const good = build((w) => {
      w.memSize([{ id: 'ram', length: 4 * PS }]);
      w.eos();
      w.page('ram', 0, new Uint8Array(PS).fill(3), 0);
      w.xbzrle('ram', 0, hex('00 01 05'), 0, 3);
      w.eos();
    });

    it('accepts the complete stream', async () => {
      const { pages } = await decode(good);
      expect(pages.map((p) => p.kind)).toEqual(['page', 'xbzrle']);
    });

    it.each([
      ['an empty stream', 0, 0],
      ['mid MEM_SIZE header', 4, 0],
      ['mid MEM_SIZE list', 12, 0],
      ['mid header', 28 + 3, 28],
      ['mid block name', 28 + 9, 28],
      ['mid page payload', 28 + 12 + 2000, 28],
      ['mid XBZRLE head', 28 + 12 + PS + 9, 28 + 12 + PS],
      ['mid XBZRLE delta', 28 + 12 + PS + 12, 28 + 12 + PS],
      ['after a complete record without a final EOS', 28 + 12 + PS + 14, 28 + 12 + PS + 14],
      ['in the final EOS', good.length - 1, good.length - 8],
    ])('when the stream ends %s', async (_what, cut, offset) => {
      await expectFailure(good.subarray(0, cut), 'ERR_RAM_TRUNCATED', offset);
    });
  });
});

describe('XbzrleDecodeStream accepts what QEMU 7.2 accepts', () => {
  it('fills the page with a non-zero ZERO fill byte', async () => {
    const { pages, dec } = await decode(hex(`0000000000001002 ${name('ram')} 5a ${EOS}`));
    expect(pages[0]!.kind).toBe('zero');
    expect(pages[0]!.data.every((v) => v === 0x5a)).toBe(true);
    expect((dec.store as MemoryPageStore).read('ram').subarray(PS).every((v) => v === 0x5a)).toBe(true);
  });

  it('treats an empty XBZRLE payload as a no-op', async () => {
    const { pages } = await decode(hex(`0000000000000040 ${name('ram')} 01 0000 ${EOS}`));
    expect(pages[0]!.kind).toBe('xbzrle');
    expect(pages[0]!.data.every((v) => v === 0)).toBe(true);
  });

  it('carries CONTINUE across EOS and keeps going after an EOS', async () => {
    const { pages } = await decode(hex(`0000000000000002 ${name('ram')} 00 ${EOS} 0000000000001022 00 ${EOS} 0000000000002022 07 ${EOS}`));
    expect(pages.map((p) => [p.block, p.offset])).toEqual([
      ['ram', 0],
      ['ram', 0x1000],
      ['ram', 0x2000],
    ]);
  });

  it('decodes a pre-existing page in place and emits copies the caller may keep', async () => {
    const store = new MemoryPageStore();
    store.put('ram', 0, new Uint8Array(PS).fill(1));
    const { pages } = await decode(hex(`0000000000000040 ${name('ram')} 01 0003 000102 0000000000000060 01 0003 01 01 03 ${EOS}`), 'whole', store);
    expect(pages[0]!.data[0]).toBe(2);
    expect(pages[0]!.data[1]).toBe(1);
    expect(pages[1]!.data[1]).toBe(3);
    expect(pages[1]!.data[0]).toBe(2);
    expect(store.read('ram').subarray(0, 3)).toEqual(Uint8Array.from([2, 3, 1]));
  });

  it('merges the blocks of successive MEM_SIZE records into `blocks`', async () => {
    const bytes = concat([memSize([{ id: 'a', length: PS }]), hex(EOS), memSize([{ id: 'b', length: 2 * PS }]), hex(`0000000000001002 ${name('b')} 00 ${EOS}`)]);
    const { dec } = await decode(bytes, 'random');
    expect(dec.blocks).toEqual([
      { id: 'a', length: PS },
      { id: 'b', length: 2 * PS },
    ]);
  });
});

describe('XbzrleDecodeStream with an asynchronous page store', () => {
  it('settles the pending write at once when destroyed while a put is pending, and stores nothing more', async () => {
    const pending: (() => void)[] = [];
    let puts = 0;
    const base = new MemoryPageStore();
    const store = {
      get: (block: string, offset: number, into: Uint8Array) => base.get(block, offset, into),
      put: (block: string, offset: number, data: Uint8Array): Promise<void> => {
        puts++;
        base.put(block, offset, data);
        return new Promise((resolve) => pending.push(resolve));
      },
    };
    const bytes = build((w) => {
      for (let i = 0; i < 8; i++) w.page('ram', i * PS, new Uint8Array(PS).fill(i + 1), 0);
      w.eos();
    });
    const dec = new XbzrleDecodeStream({ store, emitPages: false });
    dec.on('error', () => undefined);
    const written = new Promise<Error | null | undefined>((resolve) => dec.write(bytes, resolve));
    await new Promise((r) => setImmediate(r));
    expect(puts).toBe(1); // waiting on the first put
    dec.destroy(new Error('gone'));
    expect(await written).toMatchObject({ message: 'gone' });
    for (const resolve of pending.splice(0)) resolve();
    await new Promise((r) => setImmediate(r));
    expect(puts).toBe(1);
  });
});
