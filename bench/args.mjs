// Option parsing for the bench and maintenance scripts: node:util parseArgs
// with -h/--help, and a one-line message (exit status 2) instead of a stack
// trace for an unknown option or a bad value.
import { parseArgs } from 'node:util';

/**
 * The parsed values of `options` (as parseArgs types them).
 * @template {NonNullable<import('node:util').ParseArgsConfig['options']>} O
 * @typedef {ReturnType<typeof parseArgs<{ options: O, strict: true }>>['values']} Values
 */

/**
 * @template {NonNullable<import('node:util').ParseArgsConfig['options']>} O
 * @param {string} name     the script's name, for messages ("tcp-load")
 * @param {string} usage    printed for --help and after an error
 * @param {O} options
 * @returns {{ values: Values<O>, fail: (message: string) => never }}
 */
export function scriptArgs(name, usage, options) {
  /** @type {(message: string) => never} */
  const fail = (message) => {
    process.stderr.write(`${name}: ${message}\n\n${usage}`);
    process.exit(2);
  };
  let values;
  try {
    values = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h', default: false } }, strict: true }).values;
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  if (/** @type {{ help?: boolean }} */ (values).help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return { values: /** @type {Values<O>} */ (/** @type {unknown} */ (values)), fail };
}
