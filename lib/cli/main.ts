/**
 * The `xbzrle` command as a function: `main(argv, io)` runs one command over
 * the given streams and resolves to its exit status; it never exits the
 * process. The bin (`bin.ts`) runs it over the process's streams, after
 * `installProcessHandlers()`.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseCommand } from './args.js';
import { CliError, errnoText } from './errors.js';
import { BrokenPipe, onFirstCleanup, releaseRun, removeAllTempsSync, removeTempsSync, systemErrorName } from './files.js';
import { CliContext, processIo, type CliIo } from './io.js';

export type { CliIo } from './io.js';

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

type Run = (positionals: string[], o: ReturnType<typeof parseCommand>['options'], ctx: CliContext) => Promise<void>;

type Command = {
  /**
   * The command's module, loaded when it runs: a run loads only what its
   * command uses (`decode` needs no stream classes or zstd), which is most of
   * a short run's start-up time.
   */
  load: () => Promise<{ run: Run; help: string }>;
  options: Parameters<typeof parseCommand>[1];
};

const COMMANDS: Record<string, Command> = {
  diff: { load: () => import('./commands/diff.js').then((m) => ({ run: m.diff, help: m.DIFF_HELP })), options: ['output', 'block', 'page-size', 'format', 'level', 'no-compress', 'threads'] },
  patch: { load: () => import('./commands/patch.js').then((m) => ({ run: m.patch, help: m.PATCH_HELP })), options: ['output', 'block', 'page-size', 'cache-size', 'no-verify', 'target', 'threads'] },
  stat: { load: () => import('./commands/stat.js').then((m) => ({ run: m.stat, help: m.STAT_HELP })), options: ['json', 'page-size', 'target'] },
  extract: { load: () => import('./commands/extract.js').then((m) => ({ run: m.extract, help: m.EXTRACT_HELP })), options: ['output', 'out', 'json', 'page-size', 'cache-size', 'target', 'threads'] },
  encode: { load: () => import('./commands/encode.js').then((m) => ({ run: m.encode, help: m.ENCODE_HELP })), options: ['output', 'image-size', 'cache-size', 'block', 'page-size', 'threads'] },
  decode: { load: () => import('./commands/decode.js').then((m) => ({ run: m.decode, help: m.DECODE_HELP })), options: ['out', 'output', 'block', 'page-size', 'cache-size', 'target', 'threads'] },
  report: { load: () => import('./commands/report.js').then((m) => ({ run: m.report, help: m.REPORT_HELP })), options: ['output', 'page-size'] },
  verify: { load: () => import('./commands/verify.js').then((m) => ({ run: m.verify, help: m.VERIFY_HELP })), options: ['page-size', 'json'] },
};

/** The package's version: its package.json is next to `dist/` (the bin), or two levels up (`lib/cli/`, the sources). */
function version(): string {
  // The bin is CommonJS (__filename); the sources are ES modules (import.meta.url).
  const here = typeof __filename === 'string' ? pathToFileURL(__filename) : import.meta.url;
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, here), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'xbzrle') return pkg.version;
    } catch {
      // not there
    }
  }
  return 'unknown';
}

function lookup(name: string): Command {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) throw new CliError(`unknown command ${JSON.stringify(name)}`, true);
  return command;
}

/**
 * Runs `xbzrle ARGV...` over `io` (default: the process's stdin, stdout,
 * stderr and environment) and resolves to the exit status: 0 on success, 1
 * after printing the error on `io.stderr`. Temp files and folders of a failed
 * run are removed. Never rejects, never exits the process.
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const ctx = new CliContext(io);
  /** The command being run, for the usage hint of an error ("Try 'xbzrle diff --help'"). */
  let current: string | undefined;
  // Text output (help, stat, extract's summary) to a reader that went away (`| head`):
  // stop quietly, like the binary outputs do. Other stdout errors end the run with status 1.
  let outError: NodeJS.ErrnoException | undefined;
  const onOutError = (err: NodeJS.ErrnoException): void => {
    outError ??= err;
  };
  const stdout = io.stdout;
  stdout.on('error', onOutError);
  try {
    const code = await run(argv, ctx, (name) => {
      current = name;
    });
    if (outError === undefined) {
      releaseRun(ctx);
      return code;
    }
    removeTempsSync(ctx);
    if (outError.code === 'EPIPE') return 0;
    io.stderr.write(`xbzrle: stdout: ${outError.message}\n`);
    return 1;
  } catch (err) {
    removeTempsSync(ctx);
    if (err instanceof BrokenPipe) return 0;
    if (err instanceof CliError) {
      io.stderr.write(`xbzrle: ${err.message}\n${err.usage ? `Try 'xbzrle ${current === undefined ? '' : `${current} `}--help'.\n` : ''}`);
    } else if (errnoText(err) !== null && systemErrorName(err) !== undefined) {
      // A system error on a file: named as the user gave it (a temp file by its output's name).
      io.stderr.write(`xbzrle: ${systemErrorName(err)}: ${errnoText(err)}\n`);
    } else {
      const e = err as NodeJS.ErrnoException;
      const message = e.message ?? String(err);
      io.stderr.write(`xbzrle: ${e.code === undefined || message.startsWith(e.code) ? '' : `${e.code}: `}${message}\n`);
    }
    return 1;
  } finally {
    stdout.off('error', onOutError);
  }
}

async function run(argv: readonly string[], ctx: CliContext, running: (name: string) => void): Promise<number> {
  const out = ctx.io.stdout;
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help') {
    out.write(HELP);
    return name === undefined ? 1 : 0;
  }
  if (name === 'help') {
    if (rest.length > 1) throw new CliError('help takes at most one COMMAND', true);
    out.write(rest[0] === undefined ? HELP : (await lookup(rest[0]).load()).help);
    return 0;
  }
  if (name === '--version' || name === '-V') {
    out.write(`xbzrle ${version()}\n`);
    return 0;
  }
  const command = lookup(name);
  running(name);
  const { options, positionals, help, version: wantsVersion } = parseCommand(rest, command.options);
  if (wantsVersion && !help) {
    out.write(`xbzrle ${version()}\n`);
    return 0;
  }
  const loaded = await command.load();
  if (help) {
    out.write(loaded.help);
    return 0;
  }
  await loaded.run(positionals, options, ctx);
  return 0;
}

/**
 * What only the bin does, to the process itself: a failed stdout (EPIPE: a
 * reader that went away, `| head`) ends it at once with status 0 (1 and a
 * message for other errors); once a run makes a temp file or folder, SIGINT,
 * SIGTERM and SIGHUP remove them and exit with 128 + the signal's number.
 */
export function installProcessHandlers(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    removeAllTempsSync();
    if (err.code !== 'EPIPE') process.stderr.write(`xbzrle: stdout: ${err.message}\n`);
    process.exit(err.code === 'EPIPE' ? 0 : 1);
  });
  onFirstCleanup(() => {
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
      ['SIGHUP', 129],
    ] as const) {
      process.on(signal, () => {
        removeAllTempsSync();
        process.exit(code);
      });
    }
  });
}
