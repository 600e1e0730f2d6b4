/**
 * Records of several blocks interleaved (each block's first page record
 * after another block's carries its name, the others CONTINUE): the encoder
 * in runs — one thread, and the pool's workers with 2 and 3 threads — writes
 * the bytes, chunks and statistics of the page-by-page path, for random
 * block layouts, record sizes, chunk sizes and cache sizes (fewer slots than
 * pages too), over rounds with syncs and a final stage.
 */
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EncoderCore } from '../lib/core/encoder.js';
import { forcePoolPath } from '../lib/core/path-tuner.js';
import { disposeKernelPools } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { coreOutput, drainCore, memoryRounds, type CoreOutput } from './helpers/rounds.js';

interface Plan {
  ps: number;
  /** Pages per block, and the blocks' names (one long). */
  blocks: { id: string; pages: number }[];
  /** Records of up to this many pages, blocks taken in a shuffled order each round. */
  run: number;
  rounds: number;
  seed: number;
  cacheSlots: number;
  chunkSize: number;
  final: boolean;
}

function encode(plan: Plan, images: Map<string, Uint8Array[]>, threads: number, mode: 'alone' | 'pool' | null): CoreOutput {
  forcePoolPath(mode);
  const { ps } = plan;
  const core = new EncoderCore({ pageSize: ps, cacheSize: plan.cacheSlots * ps, threads, chunkSize: plan.chunkSize, blocks: plan.blocks.map((b) => ({ id: b.id, length: b.pages * ps })) });
  const chunks: Uint8Array[] = [];
  const drain = (): void => drainCore(core, chunks);
  try {
    drain();
    for (let r = 0; r < plan.rounds; r++) {
      // Records of the blocks interleaved: a record of each block in turn, in an order that moves each round.
      const at = new Map(plan.blocks.map((b) => [b.id, 0]));
      let left = plan.blocks.reduce((s, b) => s + b.pages, 0);
      for (let turn = r; left > 0; turn++) {
        const b = plan.blocks[turn % plan.blocks.length]!;
        const from = at.get(b.id)!;
        if (from === b.pages) continue;
        const n = Math.min(b.pages - from, 1 + ((turn * 7 + plan.seed) % plan.run));
        core.feed({ block: b.id, offset: from * ps, data: images.get(b.id)![r]!.subarray(from * ps, (from + n) * ps) });
        drain();
        at.set(b.id, from + n);
        left -= n;
      }
      core.sync(plan.final && r === plan.rounds - 1);
      drain();
    }
    core.end();
    drain();
    return coreOutput(core, chunks);
  } finally {
    core.dispose(true);
    forcePoolPath(null);
  }
}

const engine = getEngine();
afterEach(() => forcePoolPath(null));
afterAll(() => {
  if (engine !== null) disposeKernelPools(engine);
});

describe('the encoder in runs over records of several blocks', () => {
  it('writes the bytes, chunks and statistics of the page-by-page path', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1024, 4096),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 2, maxLength: 3 }),
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 3 }),
        fc.nat(1000),
        fc.constantFrom(4, 64, 1024),
        fc.constantFrom(64, 4096, 65536),
        fc.boolean(),
        (ps, sizes, run, rounds, seed, cacheSlots, chunkSize, final) => {
          const blocks = sizes.map((pages, i) => ({ id: i === 1 ? `block-${'x'.repeat(200)}` : `ram${i}`, pages }));
          const plan: Plan = { ps, blocks, run, rounds, seed, cacheSlots, chunkSize, final };
          const images = new Map(blocks.map((b, i) => [b.id, memoryRounds(b.pages, rounds, seed + i, i % 2 === 0, ps)]));
          const want = encode(plan, images, 1, 'alone');
          for (const [threads, mode] of [[1, null], [2, 'pool'], [3, 'pool']] as const) {
            const got = encode(plan, images, threads, mode);
            expect(Buffer.compare(got.bytes, want.bytes)).toBe(0);
            expect(got.chunks).toEqual(want.chunks);
            expect(got.stats).toEqual(want.stats);
          }
        },
      ),
      { numRuns: 12 },
    );
  });
});
