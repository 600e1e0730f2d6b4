import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RATE_PERIOD_MS, XbzrleEncodeStream, XbzrleStats } from '../lib/index.js';
import { randomBytes, rng } from './helpers/bytes.js';

const PS = 4096;

/**
 * Moves the counters as an encoder does: `normal` PAGE records (misses and
 * overflows among them), ZERO and XBZRLE records, misses, hits (XBZRLE records
 * + overflows + unchanged hits), XBZRLE bytes, unchanged hits (`skipped`,
 * which send nothing) and overflows.
 */
function sent(s: XbzrleStats, c: { normal?: number; zero?: number; xbzrle?: number; miss?: number; hits?: number; bytes?: number; skipped?: number; overflow?: number }): void {
  s.normal += c.normal ?? 0;
  s.duplicate += c.zero ?? 0;
  s.records.XBZRLE += c.xbzrle ?? 0;
  s.cacheMiss += c.miss ?? 0;
  s.xbzrlePages += c.hits ?? 0;
  s.xbzrleBytes += c.bytes ?? 0;
  s.skipped += c.skipped ?? 0;
  s.overflow += c.overflow ?? 0;
}

describe("XbzrleStats rates: 'qemu' (QEMU's rate periods)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a period ends only more than 1000 ms after it began: at construction, then at each sync that ended one', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const s = new XbzrleStats(PS, { rates: 'qemu' });
    const t0 = performance.now(); // the clock the constructor read
    sent(s, { normal: 4, miss: 4 });
    s.dirtySync(t0 + RATE_PERIOD_MS); // exactly 1000 ms: not yet
    expect(s.cacheMissRate).toBe(0);
    s.dirtySync(t0 + RATE_PERIOD_MS + 0.5);
    expect(s.cacheMissRate).toBe(1);
    // An empty period ends at +2600 (nothing recomputed); the next one begins there, so a
    // sync at +3000 (1500 ms after the last recomputation, 400 into the period) does nothing.
    sent(s, { skipped: 9, hits: 9 });
    s.dirtySync(t0 + 2600);
    sent(s, { normal: 1, miss: 1, zero: 3 });
    s.dirtySync(t0 + 3000);
    expect(s.cacheMissRate).toBe(1);
    s.dirtySync(t0 + 3601);
    expect(s.cacheMissRate).toBeCloseTo(1 / 4);
  });

  it('counts ZERO, PAGE (overflows included) and XBZRLE records as pages sent, not unchanged hits; no bytes gives an encoding rate of 0', () => {
    const s = new XbzrleStats(PS, { rates: 'qemu' });
    const t0 = performance.now();
    // 2 misses, 3 overflows (PAGE records and hits), 5 deltas, 7 zero pages, 11 unchanged hits.
    sent(s, { miss: 2, normal: 2 + 3, overflow: 3, xbzrle: 5, zero: 7, skipped: 11, hits: 3 + 5 + 11, bytes: 3 * PS + 5 * 40 });
    s.dirtySync(t0 + 1500);
    expect(s.cacheMissRate).toBeCloseTo(2 / (5 + 5 + 7));
    expect(s.encodingRate).toBeCloseTo((19 * PS) / (3 * PS + 200));
    // Hits without XBZRLE bytes (unchanged pages only) and one miss: encoding rate 0, not Infinity.
    sent(s, { normal: 1, miss: 1, skipped: 5, hits: 5 });
    s.dirtySync(t0 + 3000);
    expect(s.cacheMissRate).toBe(1);
    expect(s.encodingRate).toBe(0);
  });

  it('recomputes the rates only at a dirty sync more than a second into the period, from that period alone', () => {
    const s = new XbzrleStats(PS, { rates: 'qemu' });
    const t0 = performance.now();
    sent(s, { normal: 100, miss: 80, zero: 20 });
    s.dirtySync(t0 + 500); // too early: nothing yet (a migration under a second reports 0)
    expect([s.cacheMissRate, s.encodingRate]).toEqual([0, 0]);
    s.dirtySync(t0 + RATE_PERIOD_MS + 1);
    expect(s.cacheMissRate).toBeCloseTo(80 / 120);
    expect(s.encodingRate).toBe(0); // no cache hits in the period
    // Next period: hits and deltas; a sync 900 ms in changes nothing.
    sent(s, { xbzrle: 30, normal: 10, miss: 4, hits: 36, bytes: 30 * 200 + 6 * PS });
    s.dirtySync(t0 + RATE_PERIOD_MS + 901);
    expect(s.cacheMissRate).toBeCloseTo(80 / 120);
    s.dirtySync(t0 + 2 * RATE_PERIOD_MS + 2);
    expect(s.cacheMissRate).toBeCloseTo(4 / 40);
    expect(s.encodingRate).toBeCloseTo((36 * PS) / (30 * 200 + 6 * PS));
    // The cumulative figures are not what it reports.
    expect(s.toJSON()['xbzrle-cache']['cache-miss-rate']).toBeCloseTo(4 / 40);
  });

  it('a period that sent no page keeps the rates, and the next period counts misses and hits from the last update', () => {
    const s = new XbzrleStats(PS, { rates: 'qemu' });
    const t0 = performance.now();
    sent(s, { normal: 10, miss: 10 });
    s.dirtySync(t0 + 1500);
    expect(s.cacheMissRate).toBe(1);
    // Only unchanged hits (nothing sent): a new period begins, nothing else changes.
    sent(s, { hits: 50 });
    s.dirtySync(t0 + 3000);
    expect(s.cacheMissRate).toBe(1);
    expect(s.encodingRate).toBe(0);
    // The hits of the empty period count in the next one, whose page count starts at its own start.
    sent(s, { xbzrle: 5, hits: 5, bytes: 500, miss: 2, normal: 2 });
    s.dirtySync(t0 + 4100);
    expect(s.cacheMissRate).toBeCloseTo(2 / 7);
    expect(s.encodingRate).toBeCloseTo((55 * PS) / 500);
  });

  it('cumulative is the default, and a bad mode is refused', () => {
    const s = new XbzrleStats(PS);
    expect(s.rates).toBe('cumulative');
    sent(s, { normal: 3, miss: 1, xbzrle: 1, hits: 1, bytes: 64 });
    expect(s.cacheMissRate).toBeCloseTo(1 / 4);
    expect(s.encodingRate).toBeCloseTo(PS / 64);
    expect(() => new XbzrleStats(PS, { rates: 'periodic' as 'qemu' })).toThrow(TypeError);
    expect(() => new XbzrleEncodeStream({ rates: 'x' as 'qemu' })).toThrow(/options\.rates/);
  });
});

describe("XbzrleEncodeStream({ rates: 'qemu' })", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const syncDone = (enc: XbzrleEncodeStream, final = false): Promise<void> =>
    new Promise((resolve, reject) => enc.sync({ final }, (err) => (err ? reject(err) : resolve())));

  it('updates the rates at its sync() calls by the clock, and leaves the final stage out', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const pages = 16;
    const rand = rng(9);
    let img = randomBytes(pages * PS, rand);
    const enc = new XbzrleEncodeStream({ rates: 'qemu', cacheSize: 64 * PS });
    enc.pipe(new Writable({ write: (_c, _e, cb) => cb() }));
    const round = (): void => {
      img = img.slice();
      for (let p = 0; p < pages; p += 2) img[p * PS + 100] = img[p * PS + 100]! ^ 0xff; // half the pages change a little
      enc.write({ block: 'ram', offset: 0, data: img });
    };
    const snap = () => {
      const s = enc.stats;
      return { sent: s.normal + s.duplicate + s.records.XBZRLE, miss: s.cacheMiss, hits: s.xbzrlePages, bytes: s.xbzrleBytes };
    };
    enc.write({ block: 'ram', offset: 0, data: img }); // first pass: all misses
    vi.advanceTimersByTime(1500);
    await syncDone(enc);
    const a = snap();
    expect(enc.stats.cacheMissRate).toBeCloseTo(a.miss / a.sent);
    expect(a.miss).toBe(pages);
    round();
    vi.advanceTimersByTime(400);
    await syncDone(enc); // 400 ms: no update
    expect(enc.stats.cacheMissRate).toBeCloseTo(a.miss / a.sent);
    round();
    vi.advanceTimersByTime(700);
    await syncDone(enc, true); // 1100 ms since the update: the final stage's sync recomputes
    const b = snap();
    expect(enc.stats.cacheMissRate).toBeCloseTo((b.miss - a.miss) / (b.sent - a.sent));
    expect(enc.stats.encodingRate).toBeCloseTo(((b.hits - a.hits) * PS) / (b.bytes - a.bytes));
    expect(enc.stats.encodingRate).toBeGreaterThan(1);
    // Final-stage pages (here every page changed, unlike the rounds before), and a
    // sync after the final one, change nothing.
    img = img.slice();
    for (let p = 0; p < pages; p++) img[p * PS + 7] = img[p * PS + 7]! ^ 0x0f;
    enc.write({ block: 'ram', offset: 0, data: img });
    vi.advanceTimersByTime(5000);
    await syncDone(enc);
    expect(enc.stats.encodingRate).toBeCloseTo(((b.hits - a.hits) * PS) / (b.bytes - a.bytes));
    enc.end();
    await new Promise((resolve) => enc.on('finish', resolve));
  });

  it('end() without a final sync recomputes, as the dirty sync that begins QEMU\'s completion does', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const enc = new XbzrleEncodeStream({ rates: 'qemu', cacheSize: 64 * PS });
    const done = new Promise((resolve) => enc.pipe(new Writable({ write: (_c, _e, cb) => cb() })).on('finish', resolve));
    let img = randomBytes(16 * PS, rng(11));
    enc.write({ block: 'ram', offset: 0, data: img });
    vi.advanceTimersByTime(200);
    await syncDone(enc); // too early
    img = img.map((b, i) => (i % PS === 5 ? b ^ 1 : b));
    enc.write({ block: 'ram', offset: 0, data: img });
    vi.advanceTimersByTime(1300);
    enc.end();
    await done;
    const s = enc.stats;
    expect(s.cacheMissRate).toBeCloseTo(16 / 32);
    expect(s.encodingRate).toBeCloseTo((16 * PS) / s.xbzrleBytes);
  });

  it('a stream shorter than a second reports 0 for both, as QEMU does', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const enc = new XbzrleEncodeStream({ rates: 'qemu', cacheSize: 64 * PS });
    enc.pipe(new Writable({ write: (_c, _e, cb) => cb() }));
    const img = randomBytes(8 * PS, rng(10));
    enc.write({ block: 'ram', offset: 0, data: img });
    await syncDone(enc);
    enc.write({ block: 'ram', offset: 0, data: img.map((b, i) => (i % 999 === 0 ? b ^ 1 : b)) });
    await syncDone(enc);
    const x = enc.stats.toJSON()['xbzrle-cache'];
    expect(x['cache-miss']).toBe(8);
    expect(x.pages).toBe(8);
    expect([x['cache-miss-rate'], x['encoding-rate']]).toEqual([0, 0]);
    enc.end();
  });
});
