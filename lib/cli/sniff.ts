/**
 * What an input is, from its first bytes: a compressed file (which the
 * commands decompress or name), and whether it can be a RAM record stream.
 */

import { RAM_SAVE_FLAG } from '../format/flags.js';

/** Compressed formats recognised by their magic bytes. */
export type Compression = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'lz4';

const MAGICS: [Compression, number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lz4', [0x04, 0x22, 0x4d, 0x18]],
];

/** Bytes `compressionOf` and `looksLikeRamStream` need. */
export const SNIFF_BYTES = 8;

/** The compressed format `head` starts with, or null. */
export function compressionOf(head: Uint8Array): Compression | null {
  for (const [name, magic] of MAGICS) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return name;
  }
  return null;
}

/** The command that decompresses `c` (for "decompress it first" messages). */
export function decompressCommand(c: Compression): string {
  return c === 'gzip' ? 'gunzip' : c === 'zstd' ? 'zstd -d' : c === 'xz' ? 'xz -d' : c === 'bzip2' ? 'bunzip2' : 'lz4 -d';
}

/** Whether `head` starts with QEMU's migration file magic, "QEVM". */
export function isQemuFileMagic(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x51 && head[1] === 0x45 && head[2] === 0x56 && head[3] === 0x4d;
}

/**
 * Whether `head` (the first 8 bytes) can start a RAM record stream: a record
 * header whose flag bits (the low 10, below any page size) are one record kind
 * a stream can open with — MEM_SIZE, ZERO, PAGE, XBZRLE or EOS — without
 * CONTINUE (there is no previous block yet).
 */
export function looksLikeRamStream(head: Uint8Array): boolean {
  if (head.length < 8) return false;
  const flags = ((head[6]! & 0x03) << 8) | head[7]!;
  const F = RAM_SAVE_FLAG;
  return flags === F.MEM_SIZE || flags === F.ZERO || flags === F.PAGE || flags === F.XBZRLE || flags === F.EOS;
}
