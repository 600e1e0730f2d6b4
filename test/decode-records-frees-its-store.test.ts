/**
 * `decodeRecords` without a `store` decodes into a `MemoryPageStore` of its
 * own, which nobody else can reach: its memory (segments in the kernel's
 * memory) goes back when the generator ends — done, left with `break`, or
 * failed — instead of when it is garbage collected, so a decode after it
 * reuses that memory. A store the caller gave stays as it is, and the pages
 * handed out stay valid (they are copies).
 */
import { describe, expect, it } from 'vitest';
import { decodeRecords, encodeRounds, MemoryPageStore, type PageRecord } from '../lib/index.js';
import { getEngine } from '../lib/codec/wasm/engine.js';
import { concat, sameBytes } from './helpers/bytes.js';
import { memoryRounds } from './helpers/rounds.js';

const PS = 4096;
const PAGES = 256;

async function stream(): Promise<{ bytes: Uint8Array; last: Uint8Array }> {
  const images = memoryRounds(PAGES, 2, 5, false);
  const out: Uint8Array[] = [];
  const rounds = images.map((img) => [{ block: 'ram', offset: 0, data: img }] as PageRecord[]);
  for await (const c of encodeRounds(rounds, { cacheSize: PAGES * PS })) out.push(new Uint8Array(c));
  return { bytes: concat(out), last: images[1]! };
}

describe('decodeRecords and the store it makes itself', () => {
  const engine = getEngine();

  it('gives its memory back when the loop ends, however it ends; the pages stay valid', async () => {
    if (engine === null || !engine.shared) return; // the store in plain memory: nothing to count
    const { bytes, last } = await stream();
    const cut = bytes.subarray(0, bytes.length - 100); // fails at its end: truncated
    for (const how of ['done', 'break', 'error'] as const) {
      const before = engine.allocated;
      const kept: { offset: number; data: Uint8Array }[] = [];
      let failed = false;
      try {
        for await (const page of decodeRecords([how === 'error' ? cut : bytes])) {
          kept.push(page);
          if (how === 'break' && kept.length === PAGES + 3) break;
        }
      } catch {
        failed = true;
      }
      expect(failed, how).toBe(how === 'error');
      expect(engine.allocated, how).toBe(before);
      // The pages handed out (copies) still hold their bytes: laid out in stream order, they make the last image.
      if (how === 'done') {
        const image = new Uint8Array(PAGES * PS);
        for (const p of kept) image.set(p.data, p.offset);
        expect(sameBytes(image, last)).toBe(true);
      }
    }
  });

  it('leaves a store the caller gave as it is', async () => {
    const { bytes, last } = await stream();
    const store = new MemoryPageStore();
    for await (const page of decodeRecords([bytes], { store })) expect(page.data.length).toBe(PS);
    expect(sameBytes(store.read('ram'), last)).toBe(true);
    store.dispose();
  });
});
