import type { Readable, Writable } from 'node:stream';

/** A terminal-aware output: what the progress bar and the "binary to a terminal" refusal look at. */
export type CliOutput = Writable & { readonly isTTY?: boolean; readonly columns?: number };

/**
 * Where one run of the command reads and writes: the process's own streams
 * (`processIo()`, the bin's), or any others (tests run the command in-process
 * over in-memory streams). Relative paths are resolved against the process's
 * working folder.
 */
export interface CliIo {
  readonly stdin: Readable & { readonly isTTY?: boolean };
  readonly stdout: CliOutput;
  readonly stderr: CliOutput;
  /** Environment (`XBZRLE_PROGRESS_DELAY`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * The file descriptor behind `stdout`, when it has one: the run then refuses
   * `>> INPUT` (stdout being an input file) and writes `-o /dev/stdout` through
   * `stdout`. Without it neither check is made.
   */
  readonly stdoutFd?: number;
}

/** The process's stdin, stdout, stderr and environment, each taken only when used (stdin is not opened by `--help`). */
export function processIo(): CliIo {
  return {
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
    get env() {
      return process.env;
    },
    stdoutFd: 1,
  };
}

/**
 * One run of the command: its streams, and the temp files and folders it made
 * (removed when it fails, or by the bin on a signal).
 */
export class CliContext {
  /** Temp files not yet renamed into place. */
  readonly temps = new Set<string>();
  /** Folders this run created, removed (when still empty) if it fails; deepest last. */
  readonly dirs: string[] = [];
  /**
   * Outputs being committed as one (`commitAll`): what to undo if the run
   * fails or is interrupted before all of them are in place — the old file
   * put back from `backup`, or a new one removed once `committed`.
   */
  readonly undo: { final: string; backup: string | null; committed: boolean }[] = [];

  constructor(readonly io: CliIo = processIo()) {}
}
