import { allocPages, freePages } from '../codec/pages.js';
import { SlabPool } from '../format/slab-pool.js';

/** The unit of output slabs in the kernel's memory. */
const SLAB_PAGE = 4096;

/** An encoder's output slabs that come back once the consumer is done with each chunk. */
export interface ReusedSlabs {
  /** The record writer's allocator. */
  alloc: (size: number) => Uint8Array;
  /** The record writer's release hook. */
  release: (slab: Uint8Array, used: number) => void;
  /** The consumer is done with `chunk` (a view of a slab from here). */
  done: (chunk: Uint8Array) => void;
  /** Slabs kept: idle ones and those the writer or the consumer still has (for tests). */
  held: () => number;
  /** Gives the slabs' kernel memory back; no chunk may be used afterwards. */
  dispose: () => void;
}

/**
 * @internal Output slabs reused through a {@link SlabPool}: a long encode
 * touches a few slabs' worth of memory instead of its whole output (fresh
 * memory costs a page fault per 4 KiB on first touch). In the kernel's
 * memory (`allocPages`, plain memory without it) when `inKernel`, where the
 * record writer copies pages and deltas natively (the CLI's file output);
 * else plain memory, which `encodeRounds` measured faster for dense rounds
 * (bench/README). `view` gives the chunks their class (a Node `Buffer` over
 * the same bytes, say).
 */
export function reusedSlabs(inKernel: boolean, view: (bytes: Uint8Array) => Uint8Array = (b) => b): ReusedSlabs {
  const made: Uint8Array[] = [];
  const empty = view(new Uint8Array(0));
  const pool = new SlabPool((n) => {
    if (n === 0) return empty;
    if (!inKernel) return view(new Uint8Array(n));
    const pages = allocPages(Math.ceil(n / SLAB_PAGE), SLAB_PAGE);
    made.push(pages);
    return view(pages.subarray(0, n));
  });
  return {
    alloc: pool.alloc,
    release: pool.release,
    done: (chunk) => pool.done(chunk),
    held: () => pool.held,
    dispose: () => {
      for (const pages of made.splice(0)) freePages(pages);
    },
  };
}
