/**
 * The byte layout of the xbzrle delta container (docs/delta-format.md):
 * constants, the file header, frame headers, the trailer and the record
 * kinds of this format. Pure code over `Uint8Array`s: no Node module.
 */
import { XbzrleError } from '../errors.js';
import { readU16, readU32, readU64, writeU16, writeU32, writeU64 } from '../format/bytes.js';
import type { Hasher } from './hash.js';

/** First 8 bytes of every delta file: `0x89 'X' 'B' 'Z' 'D' '\r' '\n' 0x1a`. */
export const DELTA_MAGIC: Uint8Array = Uint8Array.of(0x89, 0x58, 0x42, 0x5a, 0x44, 0x0d, 0x0a, 0x1a);
/** The container version this library writes and reads. */
export const DELTA_VERSION = 1;
/** File header length. */
export const HEADER_SIZE = 64;
/** Frame header length. */
export const FRAME_HEADER_SIZE = 32;
/** Trailer length. */
export const TRAILER_SIZE = 48;
/** Frame types (first byte of a frame header or the trailer). */
export const FRAME_DATA = 0x01;
export const FRAME_END = 0x02;
/** Frame codecs. */
export const CODEC_STORED = 0;
export const CODEC_ZSTD = 1;
/** Hash algorithm id in the header: XXH64, seed 0. */
export const HASH_XXH64 = 1;

/** Header flag bits. */
export const FLAG_COMPRESSED = 1;
export const FLAG_DEDUP = 2;
/** OLD's digest was not known when the header was written (OLD was a pipe): it is only in the trailer. */
export const FLAG_OLD_DIGEST_IN_TRAILER = 4;
const KNOWN_FLAGS = FLAG_COMPRESSED | FLAG_DEDUP | FLAG_OLD_DIGEST_IN_TRAILER;

/** Default raw (uncompressed) size a frame is closed at. */
export const DEFAULT_FRAME_SIZE = 1 << 20;
/** Largest frame size a header may declare (16 MiB). */
export const MAX_FRAME_SIZE = 16 << 20;
/** Slack past the frame size: one record (header, longest name, XBZRLE head, a 16 KiB page). */
export const FRAME_SLACK = 64 * 1024;

/** Record flag of this format's reference record (QEMU's HOOK bit, which carries no payload in QEMU). */
export const REF_FLAG = 0x80;
/** Sources of a reference record. */
export const REF_OLD = 0;
export const REF_NEW = 1;

/** The decoded file header. */
export interface DeltaHeader {
  /** Container version (1). */
  version: number;
  /** Page size of the images and records. */
  pageSize: number;
  /** OLD's size in bytes. */
  oldSize: number;
  /** OLD's image digest, or null when it is only in the trailer. */
  oldDigest: bigint | null;
  /** NEW's size in bytes (a multiple of the page size). */
  newSize: number;
  /** Header flags (`FLAG_*`). */
  flags: number;
  /** zstd level the frames were compressed at (0 when not compressed; negative: zstd's fast levels). */
  level: number;
  /** Raw size frames are closed at. */
  frameSize: number;
}

/** The decoded trailer. */
export interface DeltaTrailer {
  /** Data frames in the body. */
  frames: number;
  /** Record bytes in all frames, uncompressed. */
  rawBytes: number;
  /** OLD's image digest. */
  oldDigest: bigint;
  /** NEW's image digest. */
  newDigest: bigint;
  /** File offset of the trailer (header and body bytes). */
  bodyEnd: number;
}

function u64big(b: Uint8Array, p: number): bigint {
  return (BigInt(readU32(b, p)) << 32n) | BigInt(readU32(b, p + 4));
}

function putU64big(b: Uint8Array, p: number, v: bigint): void {
  writeU32(b, p, Number((v >> 32n) & 0xffffffffn));
  writeU32(b, p + 4, Number(v & 0xffffffffn));
}

/** Serialises the file header (64 bytes, its own checksum last). */
export function encodeHeader(h: DeltaHeader, hasher: Hasher): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  b.set(DELTA_MAGIC, 0);
  writeU16(b, 8, h.version);
  writeU16(b, 10, HEADER_SIZE);
  writeU32(b, 12, h.pageSize);
  writeU64(b, 16, h.oldSize);
  putU64big(b, 24, h.oldDigest ?? 0n);
  writeU64(b, 32, h.newSize);
  writeU32(b, 40, h.flags | (h.oldDigest === null ? FLAG_OLD_DIGEST_IN_TRAILER : 0));
  b[44] = h.level & 0xff; // int8: zstd's fast levels are negative
  b[45] = HASH_XXH64;
  writeU32(b, 48, h.frameSize);
  putU64big(b, 56, hasher.h64(b.subarray(0, 56)));
  return b;
}

/** True when `b` starts with the delta magic (as far as it goes). */
export function isDeltaMagic(b: Uint8Array): boolean {
  if (b.length < DELTA_MAGIC.length) return false;
  for (let i = 0; i < DELTA_MAGIC.length; i++) if (b[i] !== DELTA_MAGIC[i]) return false;
  return true;
}

/** Parses and checks the file header. */
export function decodeHeader(b: Uint8Array, hasher: Hasher): DeltaHeader {
  if (!isDeltaMagic(b)) throw new XbzrleError('ERR_DELTA_FORMAT', 'not an xbzrle delta (bad magic)', { offset: 0 });
  if (u64big(b, 56) !== hasher.h64(b.subarray(0, 56))) throw new XbzrleError('ERR_DELTA_CORRUPT', 'delta header is corrupt (checksum mismatch at byte 0)', { offset: 0 });
  const version = readU16(b, 8);
  if (version !== DELTA_VERSION) throw new XbzrleError('ERR_DELTA_FORMAT', `delta format version ${version} is not supported (this library reads ${DELTA_VERSION})`, { offset: 8 });
  const pageSize = readU32(b, 12);
  const oldSize = readU64(b, 16);
  const newSize = readU64(b, 32);
  const flags = readU32(b, 40);
  const frameSize = readU32(b, 48);
  if (readU16(b, 10) !== HEADER_SIZE || b[45] !== HASH_XXH64 || (flags & ~KNOWN_FLAGS) !== 0) {
    throw new XbzrleError('ERR_DELTA_FORMAT', 'delta header names a feature this library does not know', { offset: 8 });
  }
  if (pageSize < 1024 || pageSize > 16384 || (pageSize & (pageSize - 1)) !== 0 || oldSize < 0 || newSize <= 0 || newSize % pageSize !== 0 || frameSize < 4096 || frameSize > MAX_FRAME_SIZE) {
    throw new XbzrleError('ERR_DELTA_FORMAT', 'delta header has impossible sizes', { offset: 12 });
  }
  return {
    version,
    pageSize,
    oldSize,
    oldDigest: (flags & FLAG_OLD_DIGEST_IN_TRAILER) !== 0 ? null : u64big(b, 24),
    newSize,
    flags: flags & ~FLAG_OLD_DIGEST_IN_TRAILER,
    level: (b[44]! << 24) >> 24,
    frameSize,
  };
}

/** Serialises a data frame header for `stored` payload bytes. */
export function encodeFrameHeader(index: number, codec: number, stored: Uint8Array, rawLength: number, hasher: Hasher): Uint8Array {
  const b = new Uint8Array(FRAME_HEADER_SIZE);
  b[0] = FRAME_DATA;
  b[1] = codec;
  writeU32(b, 4, index);
  writeU32(b, 8, stored.length);
  writeU32(b, 12, rawLength);
  putU64big(b, 16, hasher.h64(stored));
  putU64big(b, 24, hasher.h64(b.subarray(0, 24)));
  return b;
}

/** A decoded frame header. */
export interface FrameHeader {
  codec: number;
  storedLength: number;
  rawLength: number;
  payloadHash: bigint;
}

/**
 * Checks a frame header (or the trailer's first bytes: the caller looks at
 * `b[0]` first). `at` is its file offset, for messages.
 */
export function decodeFrameHeader(b: Uint8Array, index: number, at: number, header: DeltaHeader, hasher: Hasher): FrameHeader {
  if (u64big(b, 24) !== hasher.h64(b.subarray(0, 24))) throw corruptFrame(index, at, 'header checksum mismatch');
  const codec = b[1]!;
  const storedLength = readU32(b, 8);
  const rawLength = readU32(b, 12);
  const max = header.frameSize + FRAME_SLACK;
  if (readU32(b, 4) !== index) throw corruptFrame(index, at, `frame number ${readU32(b, 4)} out of sequence`);
  if ((codec !== CODEC_STORED && codec !== CODEC_ZSTD) || b[2] !== 0 || b[3] !== 0 || rawLength === 0 || rawLength > max || storedLength === 0 || storedLength > max + (max >>> 7) + 1024 || (codec === CODEC_STORED && storedLength !== rawLength)) {
    throw corruptFrame(index, at, 'impossible frame header');
  }
  return { codec, storedLength, rawLength, payloadHash: u64big(b, 16) };
}

/** The first 4 bytes of a zstd frame (0xFD2FB528, little-endian). */
const ZSTD_MAGIC = 0xfd2fb528;

/**
 * Checks the header of the zstd frame a compressed payload starts with before
 * zstd sees it: the zstd magic, and a content size (when the frame declares
 * one, as every frame this library writes does) equal to the frame header's
 * raw length. Without this, a hostile payload (its checksums recomputed:
 * they are not keyed) could declare gigabytes, and the decompressor would
 * reserve that much memory, one such request per frame thread, before its
 * length check failed.
 */
export function checkZstdFrame(stored: Uint8Array, rawLength: number, index: number, at: number): void {
  // zstd's fields are little-endian.
  const le = (p: number, n: number): number => {
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + stored[p + i]!;
    return v;
  };
  if (stored.length < 6 || le(0, 4) !== ZSTD_MAGIC) throw corruptFrame(index, at, 'payload is not a zstd frame');
  const descriptor = stored[4]!;
  if ((descriptor & 0x08) !== 0) throw corruptFrame(index, at, 'zstd frame header has its reserved bit set');
  const single = (descriptor >> 5) & 1;
  const sizeFlag = descriptor >> 6;
  const sizeBytes = sizeFlag === 0 ? single : 1 << sizeFlag; // 0/1, 2, 4, 8
  const pos = 5 + (single === 1 ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]!;
  if (sizeBytes === 0) return; // no content size: zstd writes at most rawLength bytes
  if (stored.length < pos + sizeBytes) throw corruptFrame(index, at, 'zstd frame header cut short');
  const declared = le(pos, sizeBytes) + (sizeBytes === 2 ? 256 : 0);
  if (declared !== rawLength) throw corruptFrame(index, at, `zstd frame declares ${declared} bytes, the frame header ${rawLength}`);
}

export function corruptFrame(index: number, at: number, why: string): XbzrleError {
  return new XbzrleError('ERR_DELTA_CORRUPT', `delta is corrupt in frame ${index} at byte ${at} (${why})`, { offset: at });
}

/** Serialises the trailer. */
export function encodeTrailer(t: DeltaTrailer, hasher: Hasher): Uint8Array {
  const b = new Uint8Array(TRAILER_SIZE);
  b[0] = FRAME_END;
  writeU32(b, 4, t.frames);
  writeU64(b, 8, t.rawBytes);
  putU64big(b, 16, t.oldDigest);
  putU64big(b, 24, t.newDigest);
  writeU64(b, 32, t.bodyEnd);
  putU64big(b, 40, hasher.h64(b.subarray(0, 40)));
  return b;
}

/** Parses and checks the trailer found at file offset `at`. */
export function decodeTrailer(b: Uint8Array, at: number, hasher: Hasher): DeltaTrailer {
  if (u64big(b, 40) !== hasher.h64(b.subarray(0, 40)) || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) {
    throw new XbzrleError('ERR_DELTA_CORRUPT', `delta trailer is corrupt at byte ${at} (checksum mismatch)`, { offset: at });
  }
  return { frames: readU32(b, 4), rawBytes: readU64(b, 8), oldDigest: u64big(b, 16), newDigest: u64big(b, 24), bodyEnd: readU64(b, 32) };
}
