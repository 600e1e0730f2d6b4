/**
 * `encodeRounds` and `decodeRecords` make their core when called; a generator
 * left with `return()` or `throw()` before its first `next()` never runs its
 * body (nor its `finally`), so the core is let go by the generator object
 * itself, once: the kernel's memory holds what it held before (the encoder's
 * cache is there). After that, `next()` says done, as for any finished
 * generator. (Spies on the cores' dispose: this file runs isolated.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DecoderCore } from '../lib/core/decoder.js';
import { EncoderCore } from '../lib/core/encoder.js';
import { decodeRecords, encodeRounds } from '../lib/index.js';
import { decodeRecords as webDecodeRecords, encodeRounds as webEncodeRounds } from '../lib/web/index.js';
import { getEngine } from '../lib/codec/wasm/engine.js';

const makers = {
  'encodeRounds': () => encodeRounds([], { cacheSize: 4 << 20 }),
  'encodeRounds, 2 threads': () => encodeRounds([], { cacheSize: 4 << 20, threads: 2 }),
  'encodeRounds, reuseChunks': () => encodeRounds([], { cacheSize: 4 << 20, reuseChunks: true }),
  'xbzrle/web encodeRounds': () => webEncodeRounds([], { cacheSize: 4 << 20 }),
  'decodeRecords': () => decodeRecords([]),
  'xbzrle/web decodeRecords': () => webDecodeRecords([]),
};

describe('a generator left before its first next()', () => {
  const engine = getEngine();

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it.each(Object.entries(makers))('%s: return() and throw() let its core go, once', async (name, make) => {
    const core = (name.includes('decode') ? DecoderCore : EncoderCore).prototype;
    const dispose = vi.spyOn(core as { dispose: () => void }, 'dispose');
    for (const how of ['return', 'throw'] as const) {
      dispose.mockClear();
      const before = engine?.allocated ?? 0;
      const gen = make();
      if (how === 'return') expect(await gen.return(undefined as never)).toEqual({ done: true, value: undefined });
      else await expect(gen.throw(new Error('left'))).rejects.toThrow('left');
      expect(dispose, how).toHaveBeenCalledTimes(1);
      if (engine !== null && engine.shared) expect(engine.allocated, how).toBe(before);
      expect(await gen.next()).toEqual({ done: true, value: undefined });
      await gen.return(undefined as never);
      expect(dispose, how).toHaveBeenCalledTimes(1);
    }
  });

  it('an encoder core holds kernel memory from the call on (what the hook gives back)', () => {
    if (engine === null || !engine.shared) return;
    const before = engine.allocated;
    const gen = encodeRounds([], { cacheSize: 4 << 20 });
    expect(engine.allocated).toBeGreaterThan(before);
    void gen.return(undefined as never);
    expect(engine.allocated).toBe(before);
  });

  it('started generators end as before: the hook is gone after the first next()', async () => {
    const gen = encodeRounds([[{ block: 'ram', offset: 0, data: new Uint8Array(4096) }]]);
    const first = await gen.next();
    expect(first.done).toBe(false);
    expect(Object.prototype.hasOwnProperty.call(gen, 'next')).toBe(false);
    const rest: Uint8Array[] = [];
    for await (const c of gen) rest.push(c);
    expect(gen.stats.toJSON().ram['transferred']).toBeGreaterThan(0);
  });
});
