/**
 * Page-map cells: one byte per cell and round, `kind << 5 | level`.
 *
 * `kind` is the kind of record that cost the most bytes in the cell during the
 * round ({@link CELL_KIND}); `level` (1–31, 0 only for an empty cell) is the
 * bytes sent per page of the cell, on a log scale from 2^-8 to 2^16 bytes
 * (about 1.25 levels per doubling). For a one-page cell that is the record's
 * size: an XBZRLE cell's level is its delta size.
 */

/** Kinds a page-map cell can show. */
export const CELL_KIND = Object.freeze({
  /** Nothing sent for the cell in the round (the guest did not dirty it, or it was unchanged). */
  NONE: 0,
  /** ZERO records. */
  ZERO: 1,
  /** XBZRLE records (deltas). */
  XBZRLE: 2,
  /** PAGE records for pages the stream had not sent before. */
  PAGE: 3,
  /** PAGE records for pages sent before whose delta would have fitted: the sender's cache missed. */
  MISS: 4,
  /** PAGE records for pages sent before whose delta would not fit in a page: an XBZRLE overflow. */
  OVERFLOW: 5,
  /** PAGE records for pages sent before, when page contents were not kept to tell a miss from an overflow. */
  RESENT: 6,
} as const);

/** A value of {@link CELL_KIND}. */
export type CellKind = (typeof CELL_KIND)[keyof typeof CELL_KIND];

/** Number of cell kinds (NONE included). */
export const CELL_KINDS = 7;

/** Names of the kinds, by value. */
export const CELL_KIND_NAMES: readonly string[] = ['not sent', 'ZERO', 'XBZRLE', 'PAGE (first send)', 'PAGE (cache miss)', 'PAGE (overflow)', 'PAGE (resent: miss or overflow)'];

const LOG_MIN = -8;
const LOG_MAX = 16;
const STEPS = 30;

/** The level (1–31) of `bytesPerPage` (> 0). */
export function cellLevel(bytesPerPage: number): number {
  if (!(bytesPerPage > 0)) return 1;
  const l = 1 + Math.round(((Math.log2(bytesPerPage) - LOG_MIN) * STEPS) / (LOG_MAX - LOG_MIN));
  return l < 1 ? 1 : l > 31 ? 31 : l;
}

/** Bytes per page a level stands for (the middle of its range); 0 for level 0. */
export function levelBytes(level: number): number {
  if (level <= 0) return 0;
  return 2 ** (LOG_MIN + ((level - 1) * (LOG_MAX - LOG_MIN)) / STEPS);
}

/** A cell code from a kind and bytes per page. */
export function cellCode(kind: number, bytesPerPage: number): number {
  return kind === 0 ? 0 : (kind << 5) | cellLevel(bytesPerPage);
}

/** The kind of a cell code. */
export function codeKind(code: number): CellKind {
  return (code >> 5) as CellKind;
}

/** The level of a cell code. */
export function codeLevel(code: number): number {
  return code & 31;
}

/** Two codes of the same cell in successive rounds, as one: the kind costing more, the bytes added. */
export function mergeInTime(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  const ba = levelBytes(a & 31);
  const bb = levelBytes(b & 31);
  const kind = ba > bb ? a >> 5 : bb > ba ? b >> 5 : Math.max(a >> 5, b >> 5);
  return (kind << 5) | cellLevel(ba + bb);
}

/** Two neighbouring cells of as many pages each, as one cell of both: the kind costing more, the bytes averaged. */
export function mergeInSpace(a: number, b: number): number {
  if (a === 0 && b === 0) return 0;
  const ba = levelBytes(a & 31);
  const bb = levelBytes(b & 31);
  const kind = ba > bb ? a >> 5 : bb > ba ? b >> 5 : Math.max(a >> 5, b >> 5);
  return (kind << 5) | cellLevel((ba + bb) / 2);
}
