import { allocPages } from '../../lib/index.js';
import { rng } from './bytes.js';

/**
 * `count` rounds of an image of `pages` pages that changes like memory: each
 * round, from the one before (round 0 from zeros), a page is zeroed (1 in 10),
 * rewritten with random bytes (1 in 10: overflows), given 1-6 small edits
 * (4 in 10) or left as it was. In `allocPages` memory when `inKernel`.
 */
export function memoryRounds(pages: number, count: number, seed: number, inKernel: boolean, pageSize = 4096): Uint8Array[] {
  const float = rng(seed);
  const rand = (): number => (float() * 4294967296) >>> 0;
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(pages * pageSize);
  for (let r = 0; r < count; r++) {
    const img = inKernel ? allocPages(pages, pageSize) : new Uint8Array(pages * pageSize);
    img.set(prev);
    for (let p = 0; p < pages; p++) {
      const kind = rand() % 10;
      const at = p * pageSize;
      if (kind === 0) img.fill(0, at, at + pageSize);
      else if (kind === 1) for (let i = 0; i < pageSize; i++) img[at + i] = rand() & 0xff;
      else if (kind < 6) for (let e = 0; e < 1 + (rand() % 6); e++) img[at + (rand() % pageSize)] = rand() & 0xff;
    }
    out.push(img);
    prev = img;
  }
  return out;
}
