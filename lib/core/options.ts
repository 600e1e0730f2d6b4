import { argRangeError, argTypeError } from '../errors.js';
import { MAX_PAGE_SIZE, MIN_PAGE_SIZE } from '../format/flags.js';

/** @internal Validates a stream page size: a power of two from 1 KiB to 16 KiB. */
export function checkPageSize(value: unknown, name = 'pageSize'): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw argTypeError(name, 'an integer', value);
  if (value < MIN_PAGE_SIZE || value > MAX_PAGE_SIZE || (value & (value - 1)) !== 0) {
    throw argRangeError(name, `a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE}`, value);
  }
  return value;
}

/** @internal */
export function checkOptions<T extends object>(value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw argTypeError('options', 'an object', value);
  return value;
}

/** @internal Most threads an encoder, a decoder or a delta job takes. */
export const MAX_THREADS = 256;

/** @internal Validates a `threads` option: a whole number from 1 to {@link MAX_THREADS}; 1 when not given. */
export function checkThreads(value: unknown): number {
  return value === undefined ? 1 : checkPositiveInteger(value, 'options.threads', MAX_THREADS);
}

/** @internal */
export function checkPositiveInteger(value: unknown, name: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw argTypeError(name, 'an integer', value);
  if (value < 1 || value > max) throw argRangeError(name, `from 1 to ${max}`, value);
  return value;
}
