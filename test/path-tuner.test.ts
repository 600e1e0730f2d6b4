/**
 * The threaded encoder's choice, group by group, between its worker pool and
 * the calling thread alone (lib/core/path-tuner.ts): both give the same
 * records (test/threads-encoder.test.ts), so only the time per page decides.
 */
import { describe, expect, it } from 'vitest';
import { PathTuner } from '../lib/core/path-tuner.js';

describe('PathTuner', () => {
  it('tries the pool, then the thread alone, then keeps the faster and tries the other every 8th group', () => {
    const t = new PathTuner();
    expect(t.usePool()).toBe(true); // group 1: nothing measured, the pool first
    t.record(true, 1000, 3); // 3 µs a page on the pool
    expect(t.usePool()).toBe(false); // group 2: alone, once
    t.record(false, 1000, 1); // 1 µs a page alone
    const picks: boolean[] = [];
    for (let g = 3; g <= 32; g++) picks.push(t.usePool());
    // Alone from now on, but every 8th group tries the pool again.
    expect(picks.map((p, k) => (p ? k + 3 : 0)).filter((g) => g !== 0)).toEqual([8, 16, 24, 32]);
  });

  it('takes a path by the least time of its last 3 samples: one slow group does not keep it out', () => {
    const t = new PathTuner();
    t.usePool();
    t.record(true, 1000, 25); // a first pool group slowed down (25 µs a page: faults, workers starting)
    t.usePool();
    t.record(false, 1000, 2); // 2 µs a page alone
    expect(t.usePool()).toBe(false);
    t.record(false, 1000, 2);
    for (let g = 4; g < 8; g++) expect(t.usePool()).toBe(false);
    expect(t.usePool()).toBe(true); // group 8: the pool again
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
