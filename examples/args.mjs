// The examples' command-line options: node:util parseArgs, plus -h/--help
// and a short message instead of a stack trace when an option is unknown or
// a value is out of range (exit status 2).
import { parseArgs } from 'node:util';

/**
 * Parses `options` (a parseArgs options object). Returns the values, the
 * positionals (when `allowPositionals`), and `usageError(message)`, which
 * prints the message and `usage` and exits with status 2.
 */
export function exampleOptions(usage, options, allowPositionals = false) {
  const usageError = (message) => {
    console.error(`${message}\n${usage}`);
    process.exit(2);
  };
  try {
    const { values, positionals } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals });
    if (values.help) {
      console.log(usage);
      process.exit(0);
    }
    return { values, positionals, usageError };
  } catch (err) {
    return usageError(err.message);
  }
}
