import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FilePageStore, XbzrleDecodeStream, type PageRecord } from '../lib/index.js';
import { disposeKernelPools } from '../lib/codec/wasm/pool.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { rng, sameBytes, split } from './helpers/bytes.js';
import { encodeRounds } from './helpers/streams.js';

const PS = 1024;
const dir = mkdtempSync(join(tmpdir(), 'xbzrle-fps-existing-'));
afterAll(() => {
  const engine = getEngine();
  if (engine !== null) disposeKernelPools(engine);
  rmSync(dir, { recursive: true, force: true });
});
let files = 0;

describe('FilePageStore: decoding into files there before', () => {
  it('rebuilds every block as the rounds left it, over files holding data, any cache, window and thread count', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 4 }), // rounds
        fc.oneof(fc.integer({ min: 0, max: 3 * PS }), fc.integer({ min: 3 * PS, max: 40 * PS })),
        fc.integer({ min: 1, max: 12 * PS }),
        fc.constantFrom(1, 2),
        fc.boolean(), // pages in file order (a migration's first round) or shuffled
        async (seed, roundCount, cacheSize, bufferSize, threads, ordered) => {
          const rand = rng(seed);
          const blocks = [
            { id: 'pc.ram', pages: 16 + Math.floor(rand() * 48) },
            { id: 'vga/ram', pages: 1 + Math.floor(rand() * 8) },
          ];
          const paths = blocks.map(() => join(dir, `f${files++}`));
          const model: Uint8Array[] = [];
          for (let b = 0; b < blocks.length; b++) {
            const length = blocks[b]!.pages * PS;
            // A file there before: missing, shorter or longer than the block, data or zeros.
            const kind = Math.floor(rand() * 4);
            const size = kind === 0 ? -1 : Math.floor(rand() * (length + 4 * PS));
            const pre = size < 0 ? null : new Uint8Array(size);
            if (pre !== null) for (let i = 0; i < pre.length; i += 1 + Math.floor(rand() * 300)) pre[i] = kind === 1 ? 0 : 1 + Math.floor(rand() * 255);
            if (pre !== null) await writeFile(paths[b]!, pre);
            const m = new Uint8Array(length);
            if (pre !== null) m.set(pre.subarray(0, length));
            model.push(m);
          }
          const current = blocks.map((b) => new Uint8Array(b.pages * PS));
          const rounds: PageRecord[][] = [];
          for (let r = 0; r < roundCount; r++) {
            const recs: PageRecord[] = [];
            for (let b = 0; b < blocks.length; b++) {
              for (let p = 0; p < blocks[b]!.pages; p++) {
                if (r > 0 && rand() < 0.4) continue;
                const page = current[b]!.subarray(p * PS, (p + 1) * PS);
                const x = rand();
                if (x < 0.35) page.fill(0);
                else if (x < 0.5) page.fill(1 + Math.floor(rand() * 255));
                else for (let n = 1 + Math.floor(rand() * 20); n > 0; n--) page[Math.floor(rand() * PS)] = Math.floor(rand() * 256);
                recs.push({ block: blocks[b]!.id, offset: p * PS, data: page.slice() });
                model[b]!.set(page, p * PS);
              }
            }
            if (!ordered) for (let i = recs.length - 1; i > 0; i--) {
              const j = Math.floor(rand() * (i + 1));
              [recs[i], recs[j]] = [recs[j]!, recs[i]!];
            }
            rounds.push(recs);
          }
          const { bytes } = await encodeRounds(rounds, { pageSize: PS, cacheSize: 256 * PS, blocks: blocks.map((b) => ({ id: b.id, length: b.pages * PS })) });
          const store = new FilePageStore({ path: (id) => paths[blocks.findIndex((b) => b.id === id)]!, cacheSize, bufferSize, fsync: false });
          const dec = new XbzrleDecodeStream({ store, emitPages: false, threads, pageSize: PS });
          const done = new Promise<void>((resolve, reject) => {
            dec.on('finish', resolve);
            dec.on('error', reject);
          });
          dec.resume();
          for (const c of split(bytes, 'random', seed)) dec.write(c);
          dec.end();
          await done;
          for (let b = 0; b < blocks.length; b++) {
            const file = await readFile(paths[b]!);
            if (!sameBytes(file, model[b]!)) {
              let at = 0;
              while (at < Math.min(file.length, model[b]!.length) && file[at] === model[b]![at]) at++;
              expect.fail(`block ${blocks[b]!.id}: file ${file.length} bytes, model ${model[b]!.length}, first difference at ${at} (page ${Math.floor(at / PS)}): file ${file[at]}, model ${model[b]![at]}`);
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
