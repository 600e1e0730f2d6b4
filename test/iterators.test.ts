import { describe, expect, it } from 'vitest';
import { decodeRecords, encodeRounds, MemoryPageStore, XbzrleError, type PageRecord } from '../lib/index.js';
import { concat, randomBytes, rng, sameBytes, split } from './helpers/bytes.js';

const PS = 4096;

describe('encodeRounds / decodeRecords', () => {
  it('round-trip rounds given as arrays, records and sync markers, with statistics as return values', async () => {
    const rand = rng(5);
    const a = randomBytes(16 * PS, rand);
    const b = a.slice();
    for (let i = 0; i < b.length; i += 777) b[i] = b[i]! ^ 1;
    async function* source() {
      yield [{ block: 'ram', offset: 0, data: a }] as PageRecord[];
      yield { block: 'ram', offset: 0, data: b.subarray(0, 8 * PS) };
      yield { block: 'ram', offset: 8 * PS, data: b.subarray(8 * PS) };
      yield 'final' as const;
    }
    const chunks: Uint8Array[] = [];
    const gen = encodeRounds(source());
    let r = await gen.next();
    while (!r.done) {
      chunks.push(r.value);
      r = await gen.next();
    }
    expect(r.value.records.XBZRLE).toBe(16);
    expect(r.value.dirtySyncCount).toBe(2);
    expect(gen.stats).toBe(r.value); // also a property, for for-await and pipeline() users
    const store = new MemoryPageStore();
    const kinds: string[] = [];
    const dec = decodeRecords(split(concat(chunks), 'random', 3, 2000), { store });
    let d = await dec.next();
    while (!d.done) {
      kinds.push(d.value.kind);
      d = await dec.next();
    }
    expect(d.value.records.PAGE).toBe(16);
    expect(kinds.filter((k) => k === 'xbzrle')).toHaveLength(16);
    expect(sameBytes(store.read('ram'), b)).toBe(true);
  });

  it('raise the decoder’s XbzrleError for a malformed stream', async () => {
    await expect(async () => {
      for await (const _ of decodeRecords([new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1])])) {
        // nothing
      }
    }).rejects.toBeInstanceOf(XbzrleError);
  });

  it('raise the encoder’s error for a bad record, and stop cleanly when the consumer breaks early', async () => {
    await expect(async () => {
      for await (const _ of encodeRounds([{ block: 'ram', offset: 1, data: new Uint8Array(PS) }])) {
        // nothing
      }
    }).rejects.toMatchObject({ code: 'ERR_INVALID_RECORD' });
    let pulled = 0;
    function* endless() {
      for (let i = 0; ; i++) {
        pulled++;
        yield { block: 'ram', offset: (i % 256) * PS, data: randomBytes(PS, rng(i)) };
      }
    }
    let n = 0;
    for await (const _ of encodeRounds(endless())) if (++n === 3) break;
    const after = pulled;
    await new Promise((r) => setTimeout(r, 20));
    expect(pulled).toBe(after); // the source is no longer read
  });

  it('return at once when the consumer breaks while the source is idle, and close the source', async () => {
    const { PassThrough } = await import('node:stream');
    const socket = new PassThrough(); // a quiet connection: one chunk, then nothing
    const round: PageRecord[] = [{ block: 'ram', offset: 0, data: randomBytes(4 * PS, rng(9)) }];
    const bytes: Uint8Array[] = [];
    for await (const chunk of encodeRounds([round])) bytes.push(chunk);
    socket.write(concat(bytes));
    let pages = 0;
    const started = Date.now();
    for await (const _ of decodeRecords(socket)) if (++pages === 2) break;
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((r) => setImmediate(r));
    expect(socket.destroyed).toBe(true); // its iterator was returned

    // The source is read only when the encoder needs input: at the break it is parked at its
    // `yield` (not in its await), so its return() runs at once and its cleanup happens.
    let finished = false;
    let reachedIdle = false;
    async function* idle() {
      try {
        yield { block: 'ram', offset: 0, data: randomBytes(PS, rng(1)) };
        yield 'sync' as const;
        reachedIdle = true;
        await new Promise<void>(() => undefined); // nothing more, ever
        yield 'sync' as const;
      } finally {
        finished = true;
      }
    }
    const t0 = Date.now();
    for await (const _ of encodeRounds(idle())) break;
    expect(Date.now() - t0).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 10));
    expect(reachedIdle).toBe(false); // not read ahead of the consumer
    expect(finished).toBe(true);
  });

  it('await the values of a sync iterable of promises, as for-await does', async () => {
    const round = Promise.resolve([{ block: 'ram', offset: 0, data: randomBytes(2 * PS, rng(3)) }] as PageRecord[]);
    const chunks: Uint8Array[] = [];
    const gen = encodeRounds([round] as unknown as Iterable<PageRecord[]>);
    for await (const chunk of gen) chunks.push(chunk);
    expect(gen.stats.records.PAGE).toBe(2);
  });
});
