/**
 * `DeltaApplier.steps` without OLD (neither `old` nor `oldFile`), or with
 * an `old` that is not an async iterable, is a programming error, reported
 * as a TypeError when the generator starts — before it takes any of the
 * kernel's memory for its steps, so a caller that catches it leaks nothing.
 * With OLD given, the same applier runs.
 */
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../lib/delta/reader.js';
import { DeltaApplier } from '../lib/delta/apply.js';
import { loadHasher } from '../lib/delta/hash.js';
import { loadZstd } from '../lib/delta/zstd.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { chunked, encodeInMemory, makePair } from './delta-images.js';

describe('DeltaApplier.steps without OLD', () => {
  it('throws a TypeError before it takes memory; with OLD it applies', async () => {
    const { oldImg, newImg } = makePair(7, 16);
    const { delta } = await encodeInMemory(oldImg, newImg);
    const [hasher, compressor] = await Promise.all([loadHasher(), loadZstd()]);
    const engine = getEngine();
    const before = engine?.allocated ?? 0;
    const a = await DeltaApplier.open(new ByteQueue(chunked(delta, 'whole')), { hasher, compressor });
    await expect(a.steps({}).next()).rejects.toThrow(new TypeError('DeltaApplyIO needs old or oldFile'));
    expect(engine?.allocated ?? 0).toBe(before);
    // OLD that is not an async iterable (a bare Uint8Array): its TypeError comes before any memory too.
    await expect(a.steps({ old: new Uint8Array(3) as unknown as AsyncIterable<Uint8Array> }).next()).rejects.toThrow(TypeError);
    expect(engine?.allocated ?? 0).toBe(before);

    const b = await DeltaApplier.open(new ByteQueue(chunked(delta, 'whole')), { hasher, compressor });
    const out = new Uint8Array(newImg.length);
    for await (const s of b.steps({ old: chunked(oldImg, 'whole') })) out.set(s.data, s.offset);
    expect(Buffer.compare(out, newImg)).toBe(0);
    expect(engine?.allocated ?? 0).toBe(before);
  });
});
