import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FilePageStore } from '../lib/index.js';
import { sameBytes } from './helpers/bytes.js';
import { FileModel } from './helpers/file-model.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xbzrle-fps-model-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const P = 64;

type Op =
  | { kind: 'put'; block: number; page: number; fill: number }
  | { kind: 'get'; block: number; page: number }
  | { kind: 'putOdd'; block: number; at: number; len: number; fill: number }
  | { kind: 'putAligned'; block: number; len: number; index: number; fill: number }
  | { kind: 'getOdd'; block: number; at: number; len: number }
  | { kind: 'declare'; block: number; pages: number }
  | { kind: 'flush' }
  | { kind: 'edit'; block: number; page: number; at: number; xor: number }
  | { kind: 'overwrite'; block: number; page: number; fill: number }
  | { kind: 'fill'; block: number; page: number; fill: number }
  | { kind: 'fillOdd'; block: number; at: number; len: number; fill: number }
  | { kind: 'peek'; block: number; page: number }
  | { kind: 'borrow'; block: number; page: number; fill: number }
  | { kind: 'release' };

/** Fill bytes biased to 0 (zero pages over zeros are where holes are left). */
const byte = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 255 }) });

function ops(blocks: number, pages: number): fc.Arbitrary<Op[]> {
  const block = fc.integer({ min: 0, max: blocks - 1 });
  const page = fc.integer({ min: 0, max: pages - 1 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), block, page, fill: byte }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('get' as const), block, page }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('putOdd' as const), block, at: fc.integer({ min: 0, max: pages * P }), len: fc.integer({ min: 1, max: 2 * P }), fill: byte }) },
    // Aligned writes of another size: the cache may take that size when it comes first.
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('putAligned' as const), block, len: fc.constantFrom(P / 2, 2 * P, 3 * P), index: fc.integer({ min: 0, max: 4 }), fill: byte }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('getOdd' as const), block, at: fc.integer({ min: 0, max: pages * P }), len: fc.integer({ min: 1, max: 2 * P }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('declare' as const), block, pages: fc.integer({ min: 0, max: pages + 1 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('edit' as const), block, page, at: fc.integer({ min: 0, max: P - 1 }), xor: fc.integer({ min: 1, max: 255 }) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('overwrite' as const), block, page, fill: byte }) },
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('fill' as const), block, page, fill: byte }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('fillOdd' as const), block, at: fc.integer({ min: 0, max: pages * P }), len: fc.integer({ min: 1, max: 2 * P }), fill: byte }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('peek' as const), block, page }) },
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('borrow' as const), block, page, fill: byte }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const) }) },
  );
  return fc.array(op, { maxLength: 80 });
}

/** Content of a file there before the store: absent, empty, or bytes (biased to zeros and to data). */
const preexisting = fc.oneof(
  fc.constant(null),
  fc.constant(new Uint8Array(0)),
  fc.tuple(fc.integer({ min: 1, max: 10 * P }), byte).map(([n, b]) => new Uint8Array(n).fill(b)),
  fc.uint8Array({ minLength: 1, maxLength: 10 * P }),
);

/**
 * Runs `list` against a FilePageStore and against a plain-file model; the files must end up
 * equal to the model. `files[b]` is the file of block b (several blocks may share one file
 * when `aliased`).
 */
async function check(sub: string, list: Op[], pre: (Uint8Array | null)[], cacheBytes: number, bufferBytes: number, truncate: boolean, names: string[], fileOf: (b: number) => number): Promise<void> {
  await mkdir(sub, { recursive: true });
  const fileCount = Math.max(...names.map((_, b) => fileOf(b))) + 1;
  const paths = Array.from({ length: fileCount }, (_, f) => join(sub, `f${f}.bin`));
  for (let f = 0; f < fileCount; f++) {
    const p = pre[f] ?? null;
    if (p !== null) await writeFile(paths[f]!, p);
  }
  const files = new FileModel(fileCount, pre);
  const model = files.files;
  const write = (b: number, at: number, data: Uint8Array) => files.write(fileOf(b), at, data);
  const read = (b: number, at: number, len: number) => files.read(fileOf(b), at, len);
  const store = new FilePageStore({ path: (blk) => paths[fileOf(names.indexOf(blk))]!, cacheSize: cacheBytes, bufferSize: bufferBytes, truncate, fsync: false });
  const place = async (name: string, offset: number, create: boolean) => {
    const loc = store.locate(name, offset, P, create);
    if (loc !== null) return loc;
    await store.prepare(name, offset, P, create);
    return store.locate(name, offset, P, create);
  };
  // Pages given to putBorrowed: scribbled over after any other call (which writes them first).
  const lent: Uint8Array[] = [];
  try {
    for (const o of list) {
      if (o.kind === 'borrow') {
        const data = new Uint8Array(P).fill(o.fill);
        write(o.block, o.page * P, data);
        if (store.putBorrowed(names[o.block]!, o.page * P, data)) lent.push(data);
        else await store.put(names[o.block]!, o.page * P, data);
      } else if (o.kind === 'release') {
        store.releaseBorrowed();
        for (const b of lent.splice(0)) b.fill(0xee);
      } else if (o.kind === 'put') {
        const data = new Uint8Array(P).fill(o.fill);
        write(o.block, o.page * P, data);
        await store.put(names[o.block]!, o.page * P, data);
      } else if (o.kind === 'putOdd' || o.kind === 'putAligned') {
        const at = o.kind === 'putOdd' ? o.at : o.index * o.len;
        const data = new Uint8Array(o.len).fill(o.fill);
        write(o.block, at, data);
        await store.put(names[o.block]!, at, data);
      } else if (o.kind === 'get' || o.kind === 'getOdd') {
        const at = o.kind === 'get' ? o.page * P : o.at;
        const len = o.kind === 'get' ? P : o.len;
        const got = new Uint8Array(len).fill(0xcc);
        await store.get(names[o.block]!, at, got);
        expect([...got]).toEqual([...read(o.block, at, len)]);
      } else if (o.kind === 'peek') {
        // A decoder's read of a delta base in place (locate without create, prepared when needed).
        const loc = await place(names[o.block]!, o.page * P, false);
        if (loc !== null) expect([...loc.bytes.subarray(loc.at, loc.at + P)]).toEqual([...read(o.block, o.page * P, P)]);
        if (loc !== null) store.written(names[o.block]!, o.page * P + P);
        if (loc !== null) write(o.block, o.page * P, read(o.block, o.page * P, P));
      } else if (o.kind === 'edit') {
        const page = read(o.block, o.page * P, P);
        page[o.at]! ^= o.xor;
        write(o.block, o.page * P, page);
        const loc = await place(names[o.block]!, o.page * P, false);
        if (loc === null) await store.put(names[o.block]!, o.page * P, page);
        else {
          loc.bytes[loc.at + o.at]! ^= o.xor;
          store.written(names[o.block]!, o.page * P + P);
        }
      } else if (o.kind === 'overwrite') {
        const data = new Uint8Array(P).fill(o.fill);
        write(o.block, o.page * P, data);
        const loc = await place(names[o.block]!, o.page * P, true);
        if (loc === null) await store.put(names[o.block]!, o.page * P, data);
        else {
          loc.bytes.set(data, loc.at);
          store.written(names[o.block]!, o.page * P + P);
        }
      } else if (o.kind === 'fill') {
        write(o.block, o.page * P, new Uint8Array(P).fill(o.fill));
        await store.fill(names[o.block]!, o.page * P, P, o.fill);
      } else if (o.kind === 'fillOdd') {
        write(o.block, o.at, new Uint8Array(o.len).fill(o.fill));
        await store.fill(names[o.block]!, o.at, o.len, o.fill);
      } else if (o.kind === 'declare') {
        const length = o.pages * P;
        if (truncate) files.truncate(fileOf(o.block), length);
        await store.declare([{ id: names[o.block]!, length }]);
      } else {
        await store.flush();
      }
      if (o.kind !== 'borrow') for (const b of lent.splice(0)) b.fill(0xee); // the call wrote them first
    }
    await store.finish();
  } catch (err) {
    await store.close();
    throw err;
  }
  for (let f = 0; f < fileCount; f++) {
    const file = await readFile(paths[f]!).catch(() => new Uint8Array(0));
    if (!sameBytes(file, model[f]!)) {
      let at = 0;
      while (at < Math.min(file.length, model[f]!.length) && file[at] === model[f]![at]) at++;
      throw new Error(`file ${f}: ${file.length} bytes, model ${model[f]!.length}; first difference at ${at}: file ${file[at]}, model ${model[f]![at]}`);
    }
  }
}

describe('FilePageStore: behaves as a plain file', () => {
  it('with files there before, zero-biased fills, odd sizes first, shrinking and growing declares, tiny windows', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        ops(3, 10),
        fc.array(preexisting, { minLength: 3, maxLength: 3 }),
        fc.oneof(fc.integer({ min: 0, max: 4 * P + P / 2 }), fc.integer({ min: 8 * P, max: 16 * P })),
        fc.oneof(fc.integer({ min: 1, max: 3 * P }), fc.integer({ min: 3 * P, max: 8 * P })),
        fc.boolean(),
        async (list, pre, cacheBytes, bufferBytes, truncate) => {
          // Blocks files opened when first used: 'a' and 'b/c' and 'd'.
          await check(join(dir, `run${run++}`), list, pre, cacheBytes, bufferBytes, truncate, ['a', 'b/c', 'd'], (b) => b);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('in file order with holes (a decoder), with files there before', async () => {
    // Pages in file order, as a stream's rounds put them: many windows form and close.
    let run = 0;
    const round = fc.array(fc.tuple(fc.boolean(), fc.oneof(fc.constant('put' as const), fc.constant('fill' as const), fc.constant('edit' as const)), byte), { minLength: 12, maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(round, { minLength: 1, maxLength: 4 }),
        fc.array(preexisting, { minLength: 1, maxLength: 1 }),
        fc.integer({ min: 1, max: 20 * P }),
        fc.integer({ min: 1, max: 6 * P }),
        async (rounds, pre, cacheBytes, bufferBytes) => {
          const list: Op[] = [];
          for (const r of rounds) {
            r.forEach(([sent, kind, b], page) => {
              if (!sent) return;
              if (kind === 'put') list.push({ kind: 'put', block: 0, page, fill: b });
              else if (kind === 'fill') list.push({ kind: 'fill', block: 0, page, fill: b });
              else list.push({ kind: 'edit', block: 0, page, at: b % P, xor: (b % 255) + 1 });
            });
          }
          await check(join(dir, `ord${run++}`), list, pre, cacheBytes, bufferBytes, true, ['ram'], () => 0);
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe('FilePageStore: blocks sharing one file', () => {
  // Two blocks whose files are the same file: a `path` function mapping them so, or `dir`
  // names ('a/b' and 'a_b' are both a_b.bin). Every call is flushed, so the cache holds no
  // page another block's write makes stale; only the "known zero" bookkeeping differs.
  it('writes a zero page over data another block of the same file wrote after the file was opened', async () => {
    const store = new FilePageStore({ dir, cacheSize: 8 * P, fsync: false });
    await store.get('x/y', 0, new Uint8Array(P)); // x_y.bin opened (empty): zeros from byte 0
    await store.put('x_y', 0, new Uint8Array(P).fill(7)); // the same file, through the other name
    await store.flush();
    await store.fill('x/y', 0, P, 0);
    await store.finish();
    const file = await readFile(join(dir, 'x_y.bin'));
    expect([...file]).toEqual(new Array(P).fill(0)); // a plain file: zeros; left a hole, it holds 7s
  });
});
