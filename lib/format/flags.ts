/**
 * QEMU's RAM record flags (spec: ram-stream.md §3). A record header is a
 * big-endian 64-bit word `offset | flags`, the flags living in the bits below
 * the page size.
 */
export const RAM_SAVE_FLAG = Object.freeze({
  /** Obsolete since 2009; every receiver rejects it. */
  FULL: 0x01,
  /** The page is filled with one byte (always 0 from a sender). */
  ZERO: 0x02,
  /** Old name of ZERO (QEMU ≤ 3.x). */
  COMPRESS: 0x02,
  /** The block list; the header's offset field holds the total size. */
  MEM_SIZE: 0x04,
  /** A raw page. */
  PAGE: 0x08,
  /** End of a section's records. */
  EOS: 0x10,
  /** Modifier: same block as the previous page record, no name follows. */
  CONTINUE: 0x20,
  /** An XBZRLE delta against the receiver's current page. */
  XBZRLE: 0x40,
  /** RDMA registration hook (not supported). */
  HOOK: 0x80,
  /** A zlib-compressed page (QEMU ≤ 9.0 `compress` capability; not supported). */
  COMPRESS_PAGE: 0x100,
  /** Multifd synchronisation point (QEMU ≥ 8.1; not supported). */
  MULTIFD_FLUSH: 0x200,
} as const);

/** The only XBZRLE encoding byte defined. */
export const ENCODING_FLAG_XBZRLE = 0x01;

/** Smallest page size a RAM record stream may use here (the flags need 1 KiB). */
export const MIN_PAGE_SIZE = 1024;
/** Largest page size a RAM record stream may use here (XBZRLE lengths stop at 16 KiB). */
export const MAX_PAGE_SIZE = 16384;

/** Longest block name (u8 length). */
export const MAX_IDSTR_LENGTH = 255;
