/** An error the CLI reports as one line and exit status 1. */
export class CliError extends Error {
  constructor(
    message: string,
    /** Print the usage hint after the message. */
    readonly usage = false,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** What a system error code means, in the words of `strerror` (lower case, no path, no code). */
const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'already exists',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EIO: 'input/output error',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
  EBUSY: 'device or resource busy',
  ETXTBSY: 'text file busy',
  ENXIO: 'no such device or address',
  ENODEV: 'no such device',
  EINVAL: 'invalid argument',
  EXDEV: 'cross-device link',
  ESPIPE: 'illegal seek',
  ECONNRESET: 'connection reset by peer',
  EBADF: 'bad file descriptor',
  EAGAIN: 'resource temporarily unavailable',
};

/** A system error (`err.code` like `EACCES`) as the short text a user reads, else null. */
export function errnoText(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) return null;
  return ERRNO_TEXT[code] ?? code.toLowerCase();
}

/**
 * A system error on `name` (what the user typed: an output, a folder, an input)
 * as one CLI line: `NAME: permission denied`. Anything else keeps its message.
 */
export function namedError(name: string, err: unknown): CliError {
  if (err instanceof CliError) return err;
  return new CliError(`${name}: ${errnoText(err) ?? (err as Error).message}`);
}
