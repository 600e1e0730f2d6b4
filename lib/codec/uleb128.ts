/**
 * The two-byte "small" ULEB128 lengths of the XBZRLE delta format
 * (spec: xbzrle-codec.md §2). Values 0..0x3FFF; always the shortest form on
 * encode; over-long two-byte forms (`80 00`) accepted on decode.
 */

/** Largest value a small ULEB128 length can hold. */
export const ULEB_MAX = 0x3fff;

/** Bytes needed to encode `value` (1 below 128, else 2). */
export function ulebLength(value: number): number {
  return value < 0x80 ? 1 : 2;
}

/**
 * Writes `value` (0..0x3FFF, the caller guarantees it) at `out[pos]`.
 * Returns the number of bytes written.
 */
export function ulebWrite(out: Uint8Array, pos: number, value: number): number {
  if (value < 0x80) {
    out[pos] = value;
    return 1;
  }
  out[pos] = (value & 0x7f) | 0x80;
  out[pos + 1] = value >>> 7;
  return 2;
}

/**
 * Reads a small ULEB128 at `src[pos]`; the caller guarantees two readable
 * bytes (as QEMU's decoder does). Returns `value | (bytesRead << 14)`, or -1
 * when both bytes have their top bit set (more than 14 bits).
 */
export function ulebRead(src: Uint8Array, pos: number): number {
  const b0 = src[pos]!;
  if (b0 < 0x80) return b0 | (1 << 14);
  const b1 = src[pos + 1]!;
  if (b1 >= 0x80) return -1;
  return (b0 & 0x7f) | (b1 << 7) | (2 << 14);
}
