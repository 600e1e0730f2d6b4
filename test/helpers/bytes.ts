/** Test helpers for building byte inputs and splitting them. */

export function hex(s: string): Uint8Array {
  const clean = s.replace(/[^0-9a-f]/gi, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

/** A copy of `data` placed at `shift` bytes into a larger buffer (an unaligned view). */
export function atOffset(data: Uint8Array, shift: number): Uint8Array {
  const big = new Uint8Array(data.length + shift + 7);
  big.set(data, shift);
  return big.subarray(shift, shift + data.length);
}

/** `pattern` repeated to `size` bytes (`pattern` itself when it is that long already). */
export function tile(pattern: Uint8Array, size: number): Uint8Array {
  if (pattern.length === size) return pattern;
  if (pattern.length === 0) throw new RangeError('tile: empty pattern');
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += pattern.length) out.set(pattern.subarray(0, Math.min(pattern.length, size - at)), at);
  return out;
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(n: number, rand: () => number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 256) | 0;
  return out;
}

/** Splits `data` into chunks: 'bytes' (1 byte each), 'whole', or random sizes up to `max`. */
export function split(data: Uint8Array, how: 'bytes' | 'whole' | 'random', seed = 1, max = 5000): Uint8Array[] {
  if (how === 'whole') return [data];
  const out: Uint8Array[] = [];
  if (how === 'bytes') {
    for (let i = 0; i < data.length; i++) out.push(data.subarray(i, i + 1));
    return out;
  }
  const rand = rng(seed);
  let i = 0;
  while (i < data.length) {
    const n = 1 + Math.floor(rand() * rand() * max);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

/** Fast byte equality (vitest's deep equality is slow on large arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
