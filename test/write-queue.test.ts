import { describe, expect, it } from 'vitest';
import { WriteQueue } from '../lib/store/write-queue.js';

/** A file in memory whose writes finish when the test says. */
function slowFile() {
  const bytes = new Uint8Array(64);
  const log: string[] = [];
  const pending: { name: string; finish: () => void }[] = [];
  const write = (_block: string, offset: number, data: Uint8Array): Promise<void> => {
    const name = `${offset}+${data.length}`;
    log.push(`start ${name}`);
    return new Promise<void>((resolve) => {
      pending.push({
        name,
        finish: () => {
          bytes.set(data, offset);
          log.push(`end ${name}`);
          resolve();
        },
      });
    });
  };
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  return { bytes, log, pending, write, settle };
}

describe('WriteQueue', () => {
  it('runs writes to disjoint ranges side by side, and a write overlapping an earlier one after it', async () => {
    const f = slowFile();
    const q = new WriteQueue(f.write, 8);
    const a = (await q.take()).fill(1);
    q.submit('ram', 0, a.subarray(0, 8), a);
    const b = (await q.take()).fill(2);
    q.submit('ram', 16, b.subarray(0, 8), b); // disjoint: starts at once
    const c = (await q.take()).fill(3);
    q.submit('ram', 4, c.subarray(0, 8), c); // overlaps the first: waits for it
    await f.settle();
    expect(f.log).toEqual(['start 0+8', 'start 16+8']);
    f.pending.find((p) => p.name === '16+8')!.finish();
    await f.settle();
    expect(f.log).toEqual(['start 0+8', 'start 16+8', 'end 16+8']);
    f.pending.find((p) => p.name === '0+8')!.finish();
    await f.settle();
    expect(f.log.at(-1)).toBe('start 4+8');
    f.pending.find((p) => p.name === '4+8')!.finish();
    await q.drain();
    expect([...f.bytes.subarray(0, 12)]).toEqual([1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3]); // the later write wins
    expect(q.idle).toBe(true);
  });

  it('holds at most `count` buffers: take waits for a write to finish', async () => {
    const f = slowFile();
    const q = new WriteQueue(f.write, 4, 2);
    for (let i = 0; i < 2; i++) {
      const b = q.tryTake()!;
      q.submit('ram', i * 4, b, b);
    }
    expect(q.tryTake()).toBeNull();
    let got = false;
    const waiting = q.take().then(() => (got = true));
    await f.settle();
    expect(got).toBe(false);
    f.pending[0]!.finish();
    await waiting;
    expect(got).toBe(true);
  });

  it('stops at a failed write: later writes are skipped and take/drain throw its error', async () => {
    const err = new Error('disk full');
    let writes = 0;
    const q = new WriteQueue(() => (++writes === 1 ? Promise.reject(err) : Promise.resolve()), 4);
    const a = q.tryTake()!;
    q.submit('ram', 0, a, a);
    await expect(q.drain()).rejects.toBe(err);
    const b = new Uint8Array(4);
    q.submit('ram', 0, b, null);
    await expect(q.drain()).rejects.toBe(err);
    expect(writes).toBe(1);
    await expect(q.take()).rejects.toBe(err);
  });
});
