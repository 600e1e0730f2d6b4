import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WriteQueue } from '../lib/store/write-queue.js';

describe('WriteQueue', () => {
  it('ends with every byte as the writes queued last left it, whatever order the writes finish in; buffers never handed out twice', async () => {
    const job = fc.record({
      block: fc.constantFrom('a', 'b'),
      pieces: fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 8 })), { minLength: 1, maxLength: 3 }),
      staged: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(job, { maxLength: 25 }), fc.array(fc.nat(), { minLength: 64, maxLength: 64 }), fc.integer({ min: 1, max: 4 }), async (jobs, picks, count) => {
        const files: Record<string, Uint8Array> = { a: new Uint8Array(200), b: new Uint8Array(200) };
        const model: Record<string, Uint8Array> = { a: new Uint8Array(200), b: new Uint8Array(200) };
        const pending: (() => void)[] = [];
        const write = (block: string, offset: number, data: Uint8Array) =>
          new Promise<void>((resolve) => {
            const copy = data.slice(); // what was handed to the write
            pending.push(() => {
              // The buffer must still hold what was queued when the write is made.
              expect([...data]).toEqual([...copy]);
              files[block]!.set(data, offset);
              for (const [b, n] of inFlight) if (b.buffer === data.buffer && n > 0) inFlight.set(b, n - 1);
              resolve();
            });
          });
        const q = new WriteQueue(write, 64, count);
        /** Per staging buffer: writes from it not made yet. */
        const inFlight = new Map<Uint8Array, number>();
        let pick = 0;
        const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
        const finishSome = async () => {
          await settle();
          while (pending.length > 0 && picks[pick++ % picks.length]! % 3 !== 0) {
            const i = picks[pick++ % picks.length]! % pending.length;
            pending.splice(i, 1)[0]!();
            await settle();
          }
        };
        let stamp = 1;
        for (const j of jobs) {
          // Disjoint pieces in increasing order.
          const offsets: number[] = [];
          const lengths: number[] = [];
          let at = 0;
          for (const [gap, len] of j.pieces) {
            offsets.push(at + gap);
            lengths.push(len);
            at += gap + len;
          }
          let buffer: Uint8Array;
          if (j.staged) {
            let got = q.tryTake();
            if (got === null) {
              const waiting = q.take();
              while (got === null) {
                const r = await Promise.race([waiting, settle().then(() => null)]);
                if (r !== null) got = r;
                else if (pending.length > 0) pending.shift()!();
                else throw new Error('take() waits with no write pending: a buffer was lost');
              }
            }
            // Not handed out while a write from it is still to be made.
            expect(inFlight.get(got) ?? 0).toBe(0);
            buffer = got;
          } else buffer = new Uint8Array(64);
          let p = 0;
          const pieces = offsets.map((o, i) => {
            const piece = buffer.subarray(p, p + lengths[i]!).fill(stamp);
            p += lengths[i]!;
            model[j.block]!.fill(stamp, o, o + lengths[i]!);
            return piece;
          });
          stamp = (stamp % 255) + 1;
          q.submitAll(j.block, offsets, pieces, j.staged ? buffer : null);
          if (j.staged) inFlight.set(buffer, pieces.length);
          await finishSome();
        }
        while (pending.length > 0) {
          pending.shift()!();
          await settle();
        }
        await q.drain();
        expect([...files.a!]).toEqual([...model.a!]);
        expect([...files.b!]).toEqual([...model.b!]);
      }),
      { numRuns: 60 },
    );
  });
});
