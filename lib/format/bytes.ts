/** Big-endian integer helpers over plain `Uint8Array`s (no DataView per call). */

const TWO_32 = 2 ** 32;

export function readU16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

export function readU32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

/**
 * Reads a be64 as a JS number, or returns -1 when it is 2^53 or more
 * (callers turn that into their own error).
 */
export function readU64(b: Uint8Array, p: number): number {
  const hi = readU32(b, p);
  if (hi >= 0x200000) return -1;
  return hi * TWO_32 + readU32(b, p + 4);
}

export function writeU16(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 8;
  b[p + 1] = v;
}

export function writeU32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}

/** Writes a non-negative safe integer as be64. */
export function writeU64(b: Uint8Array, p: number, v: number): void {
  writeU32(b, p, Math.floor(v / TWO_32));
  writeU32(b, p + 4, v >>> 0);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 bytes of a block name. */
export function encodeName(name: string): Uint8Array {
  return encoder.encode(name);
}

/** A block name from its bytes. */
export function decodeName(b: Uint8Array, p: number, len: number): string {
  // ASCII fast path: QEMU block names are plain ASCII.
  let ascii = true;
  for (let i = 0; i < len; i++) {
    if (b[p + i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return String.fromCharCode.apply(null, b.subarray(p, p + len) as unknown as number[]);
  return decoder.decode(b.subarray(p, p + len));
}

/**
 * A block name from its bytes, or null when they are not valid UTF-8. Block
 * names are compared as strings, so the mapping from bytes must be one to one
 * (a lossy decode would make different names equal).
 */
export function decodeBlockName(b: Uint8Array, p: number, len: number): string | null {
  for (let i = 0; i < len; i++) {
    if (b[p + i]! >= 0x80) {
      try {
        return strictDecoder.decode(b.subarray(p, p + len));
      } catch {
        return null;
      }
    }
  }
  return String.fromCharCode.apply(null, b.subarray(p, p + len) as unknown as number[]);
}
