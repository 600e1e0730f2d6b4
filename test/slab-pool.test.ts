import { describe, expect, it } from 'vitest';
import { RecordWriter } from '../lib/format/record-writer.js';
import { SlabPool } from '../lib/format/slab-pool.js';
import { concat, randomBytes, rng } from './helpers/bytes.js';

const PS = 4096;

describe('SlabPool behind a RecordWriter', () => {
  it('reuses a slab only once the writer released it and the sink is done with every byte of it', () => {
    let made = 0;
    const pool = new SlabPool((n) => {
      made++;
      return new Uint8Array(n);
    });
    const held: { chunk: Uint8Array; copy: Uint8Array }[] = [];
    const out: Uint8Array[] = [];
    const writer = new RecordWriter({ pageSize: PS, chunkSize: 16 * 1024, alloc: pool.alloc, release: pool.release }, (chunk) => {
      held.push({ chunk, copy: chunk.slice() });
      out.push(chunk.slice());
    });
    const rand = rng(5);
    const page = randomBytes(PS, rand);
    const expected: Uint8Array[] = [];
    for (let i = 0; i < 400; i++) {
      writer.page('ram', i * PS, page, 0);
      // The sink finishes chunks late and out of order, keeping up to 6 in flight.
      while (held.length > 6) {
        const k = Math.floor(rand() * held.length);
        const { chunk, copy } = held.splice(k, 1)[0]!;
        expect(Buffer.compare(chunk, copy)).toBe(0); // never overwritten while the sink had it
        pool.done(chunk);
      }
    }
    writer.flush();
    for (const { chunk, copy } of held) expect(Buffer.compare(chunk, copy)).toBe(0);
    expected.push(...out);
    expect(concat(expected).length).toBe(writer.bytesWritten);
    // 400 pages of ~4 KiB through slabs of ~150 KiB: a handful made, the rest reused.
    expect(made).toBeLessThan(12);
    expect(made).toBeGreaterThan(1);
  });

  it('does not reuse a slab the sink never finished', () => {
    let made = 0;
    const pool = new SlabPool((n) => {
      made++;
      return new Uint8Array(n);
    });
    const writer = new RecordWriter({ pageSize: PS, chunkSize: 16 * 1024, alloc: pool.alloc, release: pool.release }, () => undefined);
    for (let i = 0; i < 200; i++) writer.page('ram', i * PS, new Uint8Array(PS), 0);
    expect(pool.idle).toBe(0);
    expect(made).toBeGreaterThan(4); // no chunk was done: every slab was new
  });
});
