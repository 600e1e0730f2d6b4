// The examples' command-line options: node:util parseArgs, plus -h/--help
// and a short message instead of a stack trace when an option is unknown or
// a value is out of range (exit status 2).
import { parseArgs } from 'node:util';

/**
 * Parses `options` (a parseArgs options object). Returns the values, the
 * positionals (when `allowPositionals`), and `usageError(message)`, which
 * prints the message and `usage` and exits with status 2.
 * @template {NonNullable<import('node:util').ParseArgsConfig['options']>} O
 * @param {string} usage
 * @param {O} options
 * @param {boolean} [allowPositionals]
 * @returns {{ values: ReturnType<typeof parseArgs<{ options: O, strict: true }>>['values'], positionals: string[], usageError: (message: string) => never }}
 */
export function exampleOptions(usage, options, allowPositionals = false) {
  /** @type {(message: string) => never} */
  const usageError = (message) => {
    console.error(`${message}\n${usage}`);
    process.exit(2);
  };
  try {
    const { values, positionals } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals });
    if (/** @type {{ help?: boolean }} */ (values).help) {
      console.log(usage);
      process.exit(0);
    }
    return { values: /** @type {any} */ (values), positionals, usageError };
  } catch (err) {
    return usageError(/** @type {Error} */ (err).message);
  }
}
