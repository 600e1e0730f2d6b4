/**
 * Independent reference implementations used as test oracles: a literal,
 * byte-at-a-time transcription of the rules in the spec (xbzrle-codec.md §3,
 * §4), with QEMU's room checks at the same three points. Slow and obvious on
 * purpose; the library's codec must agree with it on every input.
 */

export function refUlebEncode(n: number): number[] {
  if (n < 0x80) return [n];
  if (n > 0x3fff) throw new Error('uleb out of range');
  return [(n & 0x7f) | 0x80, n >> 7];
}

/** Returns the delta bytes, 0 (unchanged), or -1 (overflow); 'abort' where QEMU asserts. */
export function refEncode(prev: Uint8Array, cur: Uint8Array, dlen: number): number[] | 0 | -1 | 'abort' {
  const slen = cur.length;
  const out: number[] = [];
  let i = 0;
  while (i < slen) {
    if (out.length + 2 > dlen) return -1;
    let z = 0;
    while (i < slen && prev[i] === cur[i]) {
      z++;
      i++;
    }
    if (z === slen) return 0;
    if (i === slen) return out;
    if (z > 0x3fff) return 'abort';
    out.push(...refUlebEncode(z));
    if (out.length + 2 > dlen) return -1;
    const start = i;
    while (i < slen && prev[i] !== cur[i]) i++;
    const n = i - start;
    if (n > 0x3fff) return 'abort';
    out.push(...refUlebEncode(n));
    if (out.length + n > dlen) return -1;
    for (let k = start; k < i; k++) out.push(cur[k]!);
  }
  return out.length === 0 ? 0 : out; // an empty page: QEMU's loop never runs

}

/** QEMU's decoder, writing as it goes (like QEMU). Returns d or -1. */
export function refDecode(src: Uint8Array, dst: Uint8Array): number {
  const slen = src.length;
  const dlen = dst.length;
  let i = 0;
  let d = 0;
  const uleb = (): [number, number] => {
    const b0 = src[i]!;
    if (b0 < 0x80) return [b0, 1];
    const b1 = src[i + 1]!;
    if (b1 >= 0x80) return [-1, 0];
    return [(b0 & 0x7f) | (b1 << 7), 2];
  };
  while (i < slen) {
    if (slen - i < 2) return -1;
    let [v, n] = uleb();
    if (v < 0 || (v === 0 && i !== 0)) return -1;
    i += n;
    d += v;
    if (d > dlen) return -1;
    if (slen - i < 2) return -1;
    [v, n] = uleb();
    if (v <= 0) return -1;
    i += n;
    if (d + v > dlen || i + v > slen) return -1;
    for (let k = 0; k < v; k++) dst[d + k] = src[i + k]!;
    i += v;
    d += v;
  }
  return d;
}
