/**
 * The threaded encoder's choice, group by group, between its worker pool and
 * the calling thread alone (lib/core/path-tuner.ts): both give the same
 * records (test/threads-encoder.test.ts), so only the time per page decides.
 */
import { describe, expect, it } from 'vitest';
import { PathTuner } from '../lib/core/path-tuner.js';

describe('PathTuner', () => {
  /** The groups among `from`..`to` that go to the pool. */
  const poolGroups = (t: PathTuner, from: number, to: number): number[] => {
    const groups: number[] = [];
    for (let g = from; g <= to; g++) if (t.usePool()) groups.push(g);
    return groups;
  };

  it('tries the pool, then the thread alone, then keeps the faster and, the two being close, tries the other every 8 groups', () => {
    const t = new PathTuner();
    expect(t.usePool()).toBe(true); // group 1: nothing measured, the pool first
    t.record(true, 1000, 1.2); // 1.2 µs a page on the pool
    expect(t.usePool()).toBe(false); // group 2: alone, once
    t.record(false, 1000, 1); // 1 µs a page alone
    // Alone from now on, but every 8th group after that tries the pool again.
    expect(poolGroups(t, 3, 40)).toEqual([10, 18, 26, 34]);
  });

  it('tries the slower path less often the slower it is (about 5 % of the time on tries), at least every 64 groups', () => {
    const every = (pool: number, alone: number): number[] => {
      const t = new PathTuner();
      t.usePool();
      t.record(true, 1000, pool);
      t.usePool();
      t.record(false, 1000, alone);
      const tried = poolGroups(t, 3, 202);
      return pool <= alone ? [...Array(200).keys()].map((k) => k + 3).filter((g) => !tried.includes(g)) : tried;
    };
    // The pool twice as fast (2 cores): the thread alone every 20 groups, a try costing one group's time.
    expect(every(0.5, 1)).toEqual([22, 42, 62, 82, 102, 122, 142, 162, 182, 202]);
    // The pool 8 times as fast (many cores): every 64 groups, not every 8 (which would cost most of its gain).
    expect(every(0.125, 1)).toEqual([66, 130, 194]);
    // The same for the pool when it is the slower one.
    expect(every(2, 1)).toEqual([22, 42, 62, 82, 102, 122, 142, 162, 182, 202]);
  });

  it('takes a path by the least time of its last 3 samples: one slow group does not keep it out', () => {
    const t = new PathTuner();
    t.usePool();
    t.record(true, 1000, 2.4); // a first pool group slowed down (faults, workers starting)
    t.usePool();
    t.record(false, 1000, 2); // 2 µs a page alone
    expect(t.usePool()).toBe(false);
    t.record(false, 1000, 2);
    for (let g = 4; g < 10; g++) expect(t.usePool()).toBe(false);
    expect(t.usePool()).toBe(true); // group 10: the pool again
    t.record(true, 1000, 1); // 1 µs a page: the slow sample no longer counts
    expect(t.usePool()).toBe(true);
    // The pool gets slow for good: once its last 3 samples are slow, alone is taken.
    for (let k = 0; k < 2; k++) t.record(true, 1000, 10);
    expect(t.usePool()).toBe(true); // (the fast sample is still among the last 3)
    t.record(true, 1000, 10);
    expect(t.usePool()).toBe(false);
  });

  it('starts over after reset() (a new round): the pool, then the thread alone, then the faster of the new times', () => {
    const t = new PathTuner();
    t.usePool();
    t.record(true, 1000, 50); // a first round: the pool slow (50 µs a page)
    t.usePool();
    t.record(false, 1000, 10); // alone 10 µs a page
    expect(t.usePool()).toBe(false);
    t.reset();
    expect(t.usePool()).toBe(true); // the next round tries the pool first again
    t.record(true, 1000, 0.8); // 0.8 µs a page
    expect(t.usePool()).toBe(false); // then alone once
    t.record(false, 1000, 1.2); // 1.2 µs a page
    expect(t.usePool()).toBe(true); // the pool, by the new round's times only
  });

  it('adds up short runs until they make a sample of 256 pages: a few pages that went fast do not stand for a path', () => {
    const t = new PathTuner();
    t.usePool();
    t.record(true, 512, 0.512); // the pool: 1 µs a page
    expect(t.usePool()).toBe(false);
    t.record(false, 4, 0.0004); // 4 pages alone at 0.1 µs: not a sample yet
    expect(t.usePool()).toBe(false); // alone still has no figure: tried again
    for (let k = 0; k < 63; k++) t.record(false, 4, 0.008); // 252 more pages at 2 µs
    // The sample: (0.0004 + 63 × 0.008) ms over 256 pages ≈ 1.97 µs a page, slower than the pool.
    expect(t.usePool()).toBe(true);
  });

  it('ignores samples of no pages or no time it can use', () => {
    const t = new PathTuner();
    t.record(true, 0, 5);
    t.record(false, 10, Number.NaN);
    expect(t.usePool()).toBe(true); // still nothing measured
  });
});
