/**
 * The fuzz suite: arbitrary bytes and mutated valid inputs against every
 * parser and decoder. Guarantees checked on every input: the only error is an
 * XbzrleError (nothing else is thrown, nothing crashes), nothing hangs (each
 * input must settle within a time limit), nothing is written outside the
 * target page, and memory stays bounded (MemoryPageStore with a small
 * maxMemory). In CI it runs with a fixed seed and a time budget; `npm run fuzz`
 * runs it longer with a random seed (FUZZ_MS, FUZZ_SEED).
 *
 * Inputs that ever failed are kept in test/fixtures/crashers/ and replayed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocPages, decodeXbzrle, freePages, MemoryPageStore, RamRecordParser, readQemuMigration, RecordWriter, XbzrleDecodeStream, XbzrleError } from '../lib/index.js';
import { concat, hex, randomBytes, rng, split } from './helpers/bytes.js';
import { encodeRounds } from './helpers/streams.js';
import * as zstd from '@bokuweb/zstd-wasm';
import xxhash from 'xxhash-wasm';
import { zstdDecompressed, ZstdInputError } from '../lib/cli/zstd-input.js';

const BUDGET_MS = Number(process.env['FUZZ_MS'] ?? 4000);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261122);
const settings = { seed: SEED, interruptAfterTimeLimit: BUDGET_MS, numRuns: 1_000_000, markInterruptAsFailure: false } as const;
const CRASHERS = new URL('./fixtures/crashers/', import.meta.url);
const PS = 4096;

function onlyXbzrleError(err: unknown): void {
  if (!(err instanceof XbzrleError)) throw new Error(`not an XbzrleError: ${String((err as Error)?.stack ?? err)}`);
  expect(typeof err.code).toBe('string');
}

/** Decodes through the stream with a small memory cap; resolves to 'ok' or the error code; 'hang' after 3 s. */
async function decodeStream(bytes: Uint8Array, seed: number): Promise<string> {
  const store = new MemoryPageStore({ maxMemory: 32 << 20 });
  const run = pipeline(Readable.from(split(bytes, 'random', seed, 300)), new XbzrleDecodeStream({ store, emitPages: false })).then(
    () => 'ok',
    (err: unknown) => {
      onlyXbzrleError(err);
      return (err as XbzrleError).code;
    },
  );
  const outcome = await Promise.race([run, new Promise<string>((r) => setTimeout(() => r('hang'), 3000))]);
  expect(outcome).not.toBe('hang');
  expect(store.memoryUsage).toBeLessThanOrEqual(32 << 20);
  return outcome;
}

/** Mutations of a valid input: bit flips, truncation, splices, duplicated and deleted slices. */
function mutate(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const n = Math.max(1, base.length);
  return fc.oneof(
    fc.array(fc.tuple(fc.nat(n - 1), fc.nat(7)), { minLength: 1, maxLength: 8 }).map((flips) => {
      const b = base.slice();
      for (const [i, bit] of flips) b[i] = b[i]! ^ (1 << bit);
      return b;
    }),
    fc.nat(n).map((cut) => base.slice(0, cut)),
    fc.tuple(fc.nat(n), fc.uint8Array({ maxLength: 40 })).map(([at, ins]) => concat([base.subarray(0, at), ins, base.subarray(at)])),
    fc.tuple(fc.nat(n), fc.nat(n), fc.nat(n)).map(([a, b, at]) => {
      const [s, e] = a < b ? [a, b] : [b, a];
      return concat([base.subarray(0, at), base.subarray(s, Math.min(e, s + 5000)), base.subarray(at)]);
    }),
    fc.tuple(fc.nat(n), fc.nat(200)).map(([at, len]) => concat([base.subarray(0, at), base.subarray(Math.min(n, at + len))])),
  );
}

/** A few valid RAM record streams to mutate. */
async function validStreams(): Promise<Uint8Array[]> {
  const rand = rng(1);
  const img = randomBytes(8 * PS, rand);
  img.fill(0, 0, 2 * PS);
  const img2 = img.slice();
  for (let i = 0; i < img2.length; i += 333) img2[i] = img2[i]! ^ 0x11;
  const a = (await encodeRounds([[{ block: 'ram', offset: 0, data: img }], [{ block: 'ram', offset: 0, data: img2 }]], { blocks: [{ id: 'ram', length: 8 * PS }] })).bytes;
  const b = (await encodeRounds([[{ block: 'x', offset: 0, data: img2 }, { block: 'y', offset: PS, data: img }]])).bytes;
  return [a, b];
}

describe('fuzz: decodeXbzrle', () => {
  it('arbitrary deltas: only ERR_XBZRLE_CORRUPT, nothing written outside the page (or at all, on rejection)', () => {
    const kernel = allocPages(3);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(1, 16, 100, 4096), fc.boolean(), (delta, size, inKernel) => {
        const guarded = inKernel ? kernel.subarray(0, size + 64) : new Uint8Array(size + 64);
        guarded.fill(0xa5);
        const page = guarded.subarray(32, 32 + size);
        try {
          const end = decodeXbzrle(delta, page);
          expect(end).toBeGreaterThanOrEqual(0);
          expect(end).toBeLessThanOrEqual(size);
        } catch (err) {
          onlyXbzrleError(err);
          expect((err as XbzrleError).code).toBe('ERR_XBZRLE_CORRUPT');
          expect(page.every((v) => v === 0xa5)).toBe(true);
        }
        for (let i = 0; i < 32; i++) {
          expect(guarded[i]).toBe(0xa5);
          expect(guarded[guarded.length - 1 - i]).toBe(0xa5);
        }
      }),
      { ...settings, interruptAfterTimeLimit: BUDGET_MS / 4 },
    );
    freePages(kernel);
  });
});

describe('fuzz: RAM record streams', () => {
  it('RamRecordParser on arbitrary bytes fed one byte at a time throws only XbzrleErrors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(1024, 4096), (bytes, pageSize) => {
        const p = new RamRecordParser({ pageSize });
        try {
          for (let i = 0; i < bytes.length; i++) {
            p.push(bytes.subarray(i, i + 1));
            while (p.next() !== null);
          }
          p.end();
        } catch (err) {
          onlyXbzrleError(err);
        }
      }),
      { ...settings, interruptAfterTimeLimit: BUDGET_MS / 4 },
    );
  });

  it('XbzrleDecodeStream on mutated valid streams: settles with success or an XbzrleError, memory bounded', async () => {
    const bases = await validStreams();
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...bases.keys()).chain((i) => mutate(bases[i]!)), fc.nat(), async (bytes, seed) => {
        const outcome = await decodeStream(bytes, seed);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }),
      { ...settings, interruptAfterTimeLimit: BUDGET_MS / 2 },
    );
    // The mutations reach both sides: streams that still decode, and several kinds of rejection.
    expect(outcomes.get('ok') ?? 0).toBeGreaterThan(0);
    expect([...outcomes.keys()].filter((k) => k.startsWith('ERR_')).length).toBeGreaterThanOrEqual(4);
  });

  it('XbzrleDecodeStream on arbitrary bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), fc.nat(), async (bytes, seed) => {
        await decodeStream(bytes, seed);
      }),
      { ...settings, interruptAfterTimeLimit: BUDGET_MS / 4 },
    );
  });
});

describe('fuzz: QEMU migration files', () => {
  const header = '5145564d 00000003 07 00000004 74657374';
  const body = (() => {
    const chunks: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: PS }, (c) => chunks.push(c));
    w.memSize([{ id: 'ram', length: 4 * PS }]);
    w.eos();
    w.flush();
    return Buffer.from(concat(chunks)).toString('hex');
  })();
  const part = (() => {
    const chunks: Uint8Array[] = [];
    const w = new RecordWriter({ pageSize: PS }, (c) => chunks.push(c));
    w.page('ram', PS, new Uint8Array(PS).fill(7), 0);
    w.xbzrle('ram', PS, hex('00 01 09'), 0, 3);
    w.zero('ram', 0, 0);
    w.eos();
    w.flush();
    return Buffer.from(concat(chunks)).toString('hex');
  })();
  const base = hex(`${header} 01 00000002 03 72616d 00000000 00000004 ${body} 7e 00000002 08 0003 0000 02 00000002 ${part} 7e 00000002 03 00000002 ${part} 7e 00000002 04 00000000 05 74696d6572 00000000 00000001 00 00`);

  it('the synthetic base reads', async () => {
    const info = await readQemuMigration(base);
    expect(info.ramComplete).toBe(true);
  });

  it('mutations: resolve, or reject with an XbzrleError, within the time limit', async () => {
    await fc.assert(
      fc.asyncProperty(mutate(base), fc.nat(), async (bytes, seed) => {
        const run = readQemuMigration(Readable.from(split(bytes, 'random', seed, 200)), { store: new MemoryPageStore({ maxMemory: 8 << 20 }) }).then(
          () => 'ok',
          (err: unknown) => {
            onlyXbzrleError(err);
            return 'error';
          },
        );
        expect(await Promise.race([run, new Promise((r) => setTimeout(() => r('hang'), 3000))])).not.toBe('hang');
      }),
      { ...settings, interruptAfterTimeLimit: BUDGET_MS / 2 },
    );
  });
});

describe('fuzz: zstd-compressed input', () => {
  it('mutations of real and checksummed frames: output, or a ZstdInputError, within the time limit', async () => {
    await zstd.init();
    const { h64Raw } = await xxhash();
    const raw = randomBytes(40_000, rng(4));
    raw.fill(0, 10_000, 25_000);
    const packed = zstd.compress(raw, 3);
    // The same bytes as one frame of raw blocks with a content checksum (what `zstd` writes by default).
    const blocks: number[] = [0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58];
    for (let at = 0; at < raw.length; at += 16_000) {
      const n = Math.min(16_000, raw.length - at);
      const v = (at + n === raw.length ? 1 : 0) | (n << 3);
      blocks.push(v & 0xff, (v >>> 8) & 0xff, v >>> 16, ...raw.subarray(at, at + n));
    }
    const sum = Number(h64Raw(raw) & 0xffffffffn);
    const checked = Uint8Array.from([...blocks, sum & 0xff, (sum >>> 8) & 0xff, (sum >>> 16) & 0xff, sum >>> 24]);
    const skip = Uint8Array.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
    const base = concat([packed, skip, checked]);
    await fc.assert(
      fc.asyncProperty(mutate(base), fc.nat(), async (bytes, seed) => {
        const run = (async () => {
          let total = 0;
          for await (const c of zstdDecompressed(Readable.from(split(bytes, 'random', seed, 400).map((b) => Buffer.from(b))))) total += (c as Uint8Array).length;
          return total;
        })().then(
          (total) => {
            expect(total).toBeLessThan(64 << 20);
            return 'ok';
          },
          (err: unknown) => {
            if (!(err instanceof ZstdInputError)) throw new Error(`not a ZstdInputError: ${String((err as Error)?.stack ?? err)}`);
            return 'error';
          },
        );
        expect(await Promise.race([run, new Promise((r) => setTimeout(() => r('hang'), 3000))])).not.toBe('hang');
      }),
      { ...settings, interruptAfterTimeLimit: BUDGET_MS / 2 },
    );
  });
});

describe('crashers found by fuzzing (regressions)', () => {
  const files = readdirSync(CRASHERS).filter((f) => f.endsWith('.bin'));
  it.each(files.length > 0 ? files : ['(none yet)'])('%s', async (file) => {
    if (file === '(none yet)') return;
    const bytes = new Uint8Array(readFileSync(new URL(file, CRASHERS)));
    if (file.startsWith('delta-')) {
      try {
        decodeXbzrle(bytes, new Uint8Array(PS));
      } catch (err) {
        onlyXbzrleError(err);
      }
    } else if (file.startsWith('qemu-')) {
      await readQemuMigration(bytes).catch(onlyXbzrleError);
    } else {
      await decodeStream(bytes, 1);
    }
  });
});
