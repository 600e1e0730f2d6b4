#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseCommand } from './args.js';
import { decode, DECODE_HELP } from './commands/decode.js';
import { diff, DIFF_HELP } from './commands/diff.js';
import { encode, ENCODE_HELP } from './commands/encode.js';
import { extract, EXTRACT_HELP } from './commands/extract.js';
import { patch, PATCH_HELP } from './commands/patch.js';
import { report, REPORT_HELP } from './commands/report.js';
import { stat, STAT_HELP } from './commands/stat.js';
import { verify, VERIFY_HELP } from './commands/verify.js';
import { CliError, errnoText } from './errors.js';
import { BrokenPipe, removeTempsSync, systemErrorName } from './files.js';

const HELP = `usage: xbzrle <command> [options]

QEMU XBZRLE page deltas and RAM record streams from the shell.

commands:
  diff OLD NEW [-o DELTA]          write a delta that turns OLD into NEW
  patch OLD [DELTA...] -o NEW      apply DELTA (stdin if omitted or '-'), or a chain, to OLD
  verify DELTA [OLD]               check a delta (and that OLD is its base) without applying it
  stat [FILE] [--json]             statistics of a delta or a QEMU migration file
  extract MIGFILE -o DIR           rebuild the RAM blocks of a QEMU migration file
  encode [IMAGE...] [-o OUT]       stream successive images as one delta stream
  decode [IN] -o IMAGE             rebuild the final image from such a stream
  report [FILE] -o REPORT.html     one HTML page: page maps per round, charts, summary
  help [COMMAND]                   this text, or a command's options

Run 'xbzrle help <command>' or 'xbzrle <command> --help' for a command's options.
Sizes take k/M/G suffixes. gzip- and zstd-compressed inputs are read as they are.
Exit status: 0 on success, 1 on error.
`;

type Command = {
  run: (positionals: string[], o: ReturnType<typeof parseCommand>['options']) => Promise<void>;
  help: string;
  options: Parameters<typeof parseCommand>[1];
};

const COMMANDS: Record<string, Command> = {
  diff: { run: diff, help: DIFF_HELP, options: ['output', 'block', 'page-size', 'format', 'level', 'no-compress'] },
  patch: { run: patch, help: PATCH_HELP, options: ['output', 'block', 'page-size', 'cache-size', 'no-verify', 'target'] },
  stat: { run: stat, help: STAT_HELP, options: ['json', 'page-size', 'target'] },
  extract: { run: extract, help: EXTRACT_HELP, options: ['output', 'out', 'json', 'page-size', 'cache-size', 'target'] },
  encode: { run: encode, help: ENCODE_HELP, options: ['output', 'image-size', 'cache-size', 'block', 'page-size'] },
  decode: { run: decode, help: DECODE_HELP, options: ['out', 'output', 'block', 'page-size', 'cache-size', 'target'] },
  report: { run: report, help: REPORT_HELP, options: ['output', 'page-size'] },
  verify: { run: verify, help: VERIFY_HELP, options: ['page-size', 'json'] },
};

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

/** The command being run, for the usage hint of an error ("Try 'xbzrle diff --help'"). */
let current: string | undefined;

function lookup(name: string): Command {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) throw new CliError(`unknown command ${JSON.stringify(name)}`, true);
  return command;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help') {
    process.stdout.write(HELP);
    return name === undefined ? 1 : 0;
  }
  if (name === 'help') {
    if (rest.length > 1) throw new CliError('help takes at most one COMMAND', true);
    process.stdout.write(rest[0] === undefined ? HELP : lookup(rest[0]).help);
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`xbzrle ${version()}\n`);
    return 0;
  }
  const command = lookup(name);
  current = name;
  const { options, positionals, help, version: wantsVersion } = parseCommand(rest, command.options);
  if (help) {
    process.stdout.write(command.help);
    return 0;
  }
  if (wantsVersion) {
    process.stdout.write(`xbzrle ${version()}\n`);
    return 0;
  }
  await command.run(positionals, options);
  return 0;
}

// Text output (help, stat, extract's summary) to a reader that went away (`| head`):
// stop quietly, like the binary outputs do. Other stdout errors end the run with status 1.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  removeTempsSync();
  if (err.code !== 'EPIPE') process.stderr.write(`xbzrle: stdout: ${err.message}\n`);
  process.exit(err.code === 'EPIPE' ? 0 : 1);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    removeTempsSync();
    if (err instanceof BrokenPipe) {
      process.exitCode = 0;
      return;
    }
    if (err instanceof CliError) {
      process.stderr.write(`xbzrle: ${err.message}\n${err.usage ? `Try 'xbzrle ${current === undefined ? '' : `${current} `}--help'.\n` : ''}`);
    } else if (errnoText(err) !== null && systemErrorName(err) !== undefined) {
      // A system error on a file: named as the user gave it (a temp file by its output's name).
      process.stderr.write(`xbzrle: ${systemErrorName(err)}: ${errnoText(err)}\n`);
    } else {
      const e = err as NodeJS.ErrnoException;
      const message = e.message ?? String(err);
      process.stderr.write(`xbzrle: ${e.code === undefined || message.startsWith(e.code) ? '' : `${e.code}: `}${message}\n`);
    }
    process.exitCode = 1;
  },
);
