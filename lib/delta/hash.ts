/**
 * Hashing for the delta format: XXH64 (seed 0) from `xxhash-wasm`, a
 * WebAssembly build that runs on every runtime (no Node module, no native
 * code). Page hashes feed the deduplication index and the image digests.
 */

/** The hash functions the delta code uses. */
export interface Hasher {
  /** XXH64 (seed 0) of `bytes`. */
  h64(bytes: Uint8Array): bigint;
  /** XXH64 (seed 0) of `len` bytes of `buf` from `at` (no view made by the caller). */
  h64At(buf: Uint8Array, at: number, len: number): bigint;
  /** A streaming XXH64 (seed 0). */
  create(): {
    /** Feeds `bytes` to the hash. */
    update(bytes: Uint8Array): unknown;
    /** The XXH64 of all bytes fed so far. */
    digest(): bigint;
  };
}

let loading: Promise<Hasher> | null = null;

/** The shared hasher (loaded and instantiated once, on first use: commands that hash nothing never load it). */
export function loadHasher(): Promise<Hasher> {
  loading ??= import('xxhash-wasm').then(async ({ default: xxhash }) => {
    const api = await xxhash();
    // Plain views over each buffer's memory: a subarray of a plain Uint8Array skips the
    // species lookup of subclasses (the kernel's views are a subclass), per page.
    const plain = new WeakMap<Uint8Array, Uint8Array>();
    return {
      h64: (bytes: Uint8Array) => api.h64Raw(bytes),
      h64At: (buf: Uint8Array, at: number, len: number) => {
        let p = plain.get(buf);
        if (p === undefined) {
          p = Object.getPrototypeOf(buf) === Uint8Array.prototype ? buf : new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
          plain.set(buf, p);
        }
        return api.h64Raw(p.subarray(at, at + len));
      },
      create: () => api.create64(),
    };
  });
  return loading;
}

const BATCH = 1024;

/**
 * An image digest: XXH64 over the sequence of the image's page hashes
 * (XXH64 of each page, as 8 little-endian bytes), in page order. The last
 * page of an image whose size is not a page multiple is hashed zero-padded.
 * Computing it page by page lets an unchanged page reuse the hash of OLD's page.
 */
export class ImageDigest {
  /** Pages added so far. */
  pages = 0;
  private readonly state: { update(bytes: Uint8Array): unknown; digest(): bigint };
  private readonly buf = new Uint8Array(BATCH * 8);
  private readonly view = new DataView(this.buf.buffer);
  private n = 0;
  private result: bigint | null = null;

  constructor(hasher: Hasher) {
    this.state = hasher.create();
  }

  /** Adds the hash of the next page. */
  add(pageHash: bigint): void {
    this.view.setBigUint64(this.n * 8, pageHash, true);
    this.pages++;
    if (++this.n === BATCH) {
      this.state.update(this.buf);
      this.n = 0;
    }
  }

  /**
   * Adds the hashes of the next pages at once: `hashes` holds them as 8
   * little-endian bytes each, in page order (the layout the digest hashes).
   */
  addHashes(hashes: Uint8Array): void {
    if (this.n > 0) {
      this.state.update(this.buf.subarray(0, this.n * 8));
      this.n = 0;
    }
    if (hashes.length > 0) this.state.update(hashes);
    this.pages += hashes.length / 8;
  }

  /** The digest (once; later calls return the same value). */
  digest(): bigint {
    if (this.result === null) {
      if (this.n > 0) this.state.update(this.buf.subarray(0, this.n * 8));
      this.result = this.state.digest();
    }
    return this.result;
  }
}

/** XXH64 of an all-zero page, per page size. */
const zeroHashes = new Map<number, bigint>();
export function zeroPageHash(hasher: Hasher, pageSize: number): bigint {
  let h = zeroHashes.get(pageSize);
  if (h === undefined) {
    h = hasher.h64(new Uint8Array(pageSize));
    zeroHashes.set(pageSize, h);
  }
  return h;
}

/**
 * An open-addressing index from page hash to page number, for dedup
 * candidates: 4 bytes of key (the hash's low 32 bits) and 4 bytes of page
 * number per slot, at most half the slots used, so 16 bytes per indexed page.
 * It keeps the first page of each hash; once `maxEntries` pages are in, later
 * ones are not indexed. A hit is only a candidate: callers compare the bytes.
 */
export class PageIndex {
  size = 0;
  /** Slot i: the key at 2 i, page + 1 at 2 i + 1 (0: empty); side by side, one cache miss a probe. */
  private slots: Uint32Array;
  private mask: number;
  private readonly maxEntries: number;

  /**
   * At most `maxEntries` pages; room for `expected` of them at first (the
   * table doubles if more come: the same index whatever the room, smaller
   * when few pages will come).
   */
  constructor(maxEntries: number, expected = maxEntries) {
    let cap = 1024;
    while (cap < Math.min(maxEntries, expected) * 2) cap *= 2;
    this.slots = new Uint32Array(2 * cap);
    this.mask = cap - 1;
    this.maxEntries = maxEntries;
  }

  /** Bytes of memory the index holds. */
  get bytes(): number {
    return this.slots.byteLength;
  }

  /** Indexes `page` under `hash` unless the hash is already there (at most `expected` pages). */
  insert(hash: bigint, page: number): void {
    this.insertKey(low32(hash), page);
  }

  /** {@link PageIndex.insert} with the hash's low 32 bits, `key` (as {@link low32} gives them). */
  insertKey(key: number, page: number): void {
    if (this.size >= this.maxEntries) return;
    if (2 * this.size >= this.mask) this.grow();
    const slots = this.slots;
    let i = mix(key) & this.mask;
    for (;;) {
      const v = slots[2 * i + 1]!;
      if (v === 0) {
        slots[2 * i] = key;
        slots[2 * i + 1] = page + 1;
        this.size++;
        return;
      }
      if (slots[2 * i] === key) return;
      i = (i + 1) & this.mask;
    }
  }

  /** Twice the slots, the entries placed again (each key keeps its page). */
  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(2 * old.length);
    this.mask = 2 * this.mask + 1;
    const slots = this.slots;
    for (let j = 0; j < old.length; j += 2) {
      const v = old[j + 1]!;
      if (v === 0) continue;
      const key = old[j]!;
      let i = mix(key) & this.mask;
      while (slots[2 * i + 1] !== 0) i = (i + 1) & this.mask;
      slots[2 * i] = key;
      slots[2 * i + 1] = v;
    }
  }

  /** The page indexed under `hash`'s low 32 bits, or -1. */
  find(hash: bigint): number {
    const key = low32(hash);
    const slots = this.slots;
    let i = mix(key) & this.mask;
    for (;;) {
      const v = slots[2 * i + 1]!;
      if (v === 0) return -1;
      if (slots[2 * i] === key) return v - 1;
      i = (i + 1) & this.mask;
    }
  }
}

// The low 32 bits of a hash without a BigInt operation (`hash & 0xffffffffn` allocates one per
// call): through a one-element 64-bit array's 32-bit view, the half that holds them on this
// platform (so keys read as 32-bit words from hashes stored little-endian match on little-endian
// machines, where lib/delta/scan.ts runs).
const wide = new BigUint64Array(1);
const halves = new Uint32Array(wide.buffer);
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
/** The low 32 bits of `hash`, as a number. */
export function low32(hash: bigint): number {
  wide[0] = hash;
  return halves[LOW]!;
}

function mix(k: number): number {
  return Math.imul(k ^ (k >>> 16), 0x45d9f3b) >>> 0;
}
