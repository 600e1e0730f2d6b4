/**
 * Output slabs in the kernel's memory (the CLI's encode to a file): the writer
 * copies pages and deltas into them with the kernel's copy, and the pool finds
 * each chunk's slab by range, since every slab shares the kernel's one buffer.
 */
import { describe, expect, it } from 'vitest';
import { allocPages, freePages } from '../lib/codec/pages.js';
import { RecordWriter } from '../lib/format/record-writer.js';
import { SlabPool } from '../lib/format/slab-pool.js';
import { outputSlabs } from '../lib/cli/commands/encode.js';
import { concat, randomBytes, rng } from './helpers/bytes.js';

const PS = 4096;

/** Writes the same mix of records (zero records put pages at odd offsets) through `writer`. */
function writeMix(writer: RecordWriter, sources: Uint8Array[], seed: number): void {
  const rand = rng(seed);
  for (let i = 0; i < 600; i++) {
    const src = sources[i % sources.length]!;
    const at = Math.floor(rand() * (src.length / PS)) * PS;
    const kind = rand();
    if (kind < 0.3) writer.zero('ram', i * PS);
    else if (kind < 0.6) {
      const len = 1 + Math.floor(rand() * 300);
      const off = Math.floor(rand() * (src.length - len));
      writer.xbzrle(i % 7 === 0 ? 'pc.rom' : 'ram', i * PS, src, off, len);
    } else writer.page(i % 11 === 0 ? 'pc.rom' : 'ram', i * PS, src, at);
  }
  writer.flush();
}

describe('RecordWriter with slabs in the kernel memory', () => {
  it('writes the bytes plain slabs get, from kernel and plain sources alike', () => {
    const rand = rng(11);
    const kernel = allocPages(64);
    kernel.set(randomBytes(kernel.length, rand));
    const plain = randomBytes(32 * PS, rand);
    const expected: Uint8Array[] = [];
    const reference = new RecordWriter({ pageSize: PS, chunkSize: 20_000 }, (c) => expected.push(c.slice()));
    writeMix(reference, [kernel, plain, kernel.subarray(5 * PS)], 3);
    const slabs = outputSlabs(true);
    const got: Uint8Array[] = [];
    const writer = new RecordWriter({ pageSize: PS, chunkSize: 20_000, alloc: slabs.alloc, release: slabs.release }, (c) => {
      got.push(c.slice());
      slabs.done(c);
    });
    writeMix(writer, [kernel, plain, kernel.subarray(5 * PS)], 3);
    expect(Buffer.from(concat(got)).equals(Buffer.from(concat(expected)))).toBe(true);
    expect(slabs.held()).toBeLessThanOrEqual(2); // one chunk per slab, each reused once written
    slabs.dispose();
    freePages(kernel);
  });

  // Regression: the pool found a chunk's slab by its buffer, and every kernel slab has the
  // same buffer: a slab went back to the writer while the sink still had a chunk of another.
  it('never reuses a kernel slab while the sink holds a chunk of it', () => {
    const made: Uint8Array[] = [];
    const pool = new SlabPool((n) => {
      if (n === 0) return new Uint8Array(0); // the writer's empty placeholder
      const slab = allocPages(Math.ceil(n / PS));
      made.push(slab);
      return slab;
    });
    const held: { chunk: Uint8Array; copy: Uint8Array }[] = [];
    const writer = new RecordWriter({ pageSize: PS, chunkSize: 16 * 1024, alloc: pool.alloc, release: pool.release }, (chunk) => {
      held.push({ chunk, copy: chunk.slice() });
    });
    const rand = rng(5);
    const page = allocPages(1);
    page.set(randomBytes(PS, rand));
    for (let i = 0; i < 400; i++) {
      writer.page('ram', i * PS, page, 0);
      if (i % 3 === 0) writer.zero('ram', i * PS);
      // The sink finishes chunks late and out of order, keeping up to 6 in flight.
      while (held.length > 6) {
        const { chunk, copy } = held.splice(Math.floor(rand() * held.length), 1)[0]!;
        expect(Buffer.compare(chunk, copy)).toBe(0); // never overwritten while the sink had it
        pool.done(chunk);
      }
    }
    writer.flush();
    for (const { chunk, copy } of held) expect(Buffer.compare(chunk, copy)).toBe(0);
    expect(made.length).toBeGreaterThan(1);
    expect(made.length).toBeLessThan(12);
    for (const slab of made) freePages(slab);
    freePages(page);
  });
});
