import { constants as bufferConstants } from 'node:buffer';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { MAX_THREADS } from '../core/options.js';
import { CliError } from './errors.js';

/** Options every command understands. */
export interface CommonOptions {
  force: boolean;
  quiet: boolean;
  /** true/false when forced on or off, undefined for "when stderr is a TTY". */
  progress: boolean | undefined;
  json: boolean;
  pageSize: number;
  /** True when --page-size was given (a delta's own page size is then checked against it). */
  pageSizeSet: boolean;
  cacheSize: number;
  /** True when --cache-size was given (the default may depend on the command). */
  cacheSizeSet: boolean;
  block: string | undefined;
  output: string | undefined;
  out: string | undefined;
  imageSize: number | undefined;
  /** `--no-verify`: skip checking OLD against the delta's base fingerprint. */
  noVerify: boolean;
  /** `--level N`: compression level of a delta's body (undefined: the default). */
  level: number | undefined;
  /** `--no-compress`: leave a delta's body uncompressed. */
  noCompress: boolean;
  /** `--format NAME` (e.g. `qemu` for a plain RAM record stream). */
  format: string | undefined;
  /** `--target FILE`: the receiving machine's RAM blocks (JSON, or a QEMU migration file). */
  target: string | undefined;
  /** `--threads N` (default: the available cores, at most {@link MAX_DEFAULT_THREADS}). */
  threads: number;
}

/** The default of `--threads`: the available cores, up to this many. */
export const MAX_DEFAULT_THREADS = 8;

const SPEC = {
  force: { type: 'boolean', short: 'f' },
  quiet: { type: 'boolean', short: 'q' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  json: { type: 'boolean' },
  'page-size': { type: 'string' },
  'cache-size': { type: 'string' },
  block: { type: 'string' },
  output: { type: 'string', short: 'o' },
  out: { type: 'string' },
  'image-size': { type: 'string' },
  'no-verify': { type: 'boolean' },
  level: { type: 'string' },
  'no-compress': { type: 'boolean' },
  format: { type: 'string' },
  target: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

export type Flag = keyof typeof SPEC;

/**
 * Parses a command's arguments. `allowed` lists the options the command takes
 * (besides -h, -f, -q and the progress switches); anything else is an error.
 */
export function parseCommand(
  argv: string[],
  allowed: Flag[],
): { options: CommonOptions; positionals: string[]; help: boolean; version: boolean } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: SPEC, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError((err as Error).message.replace(/\. To specify.*$/s, ''), true);
  }
  const v = parsed.values;
  const always: Flag[] = ['help', 'force', 'quiet', 'progress', 'no-progress', 'version'];
  for (const key of Object.keys(v) as Flag[]) {
    if (v[key] !== undefined && !always.includes(key) && !allowed.includes(key)) {
      throw new CliError(`option --${key} does not apply to this command`, true);
    }
  }
  const options: CommonOptions = {
    force: v.force ?? false,
    quiet: v.quiet ?? false,
    progress: v['no-progress'] === true ? false : v.progress === true ? true : undefined,
    json: v.json ?? false,
    pageSize: v['page-size'] === undefined ? 4096 : parsePageSize(v['page-size']),
    pageSizeSet: v['page-size'] !== undefined,
    cacheSize: v['cache-size'] === undefined ? 64 * 1024 * 1024 : parseSize(v['cache-size'], '--cache-size'),
    cacheSizeSet: v['cache-size'] !== undefined,
    block: v.block,
    output: v.output,
    out: v.out,
    imageSize: v['image-size'] === undefined ? undefined : parseSize(v['image-size'], '--image-size'),
    noVerify: v['no-verify'] ?? false,
    level: v.level === undefined ? undefined : parseLevel(v.level),
    noCompress: v['no-compress'] ?? false,
    format: v.format,
    target: v.target,
    threads: v.threads === undefined ? Math.min(availableParallelism(), MAX_DEFAULT_THREADS) : parseThreads(v.threads),
  };
  if (options.block !== undefined && (options.block.length === 0 || Buffer.byteLength(options.block) > 255)) {
    throw new CliError('--block must be 1 to 255 bytes');
  }
  return { options, positionals: parsed.positionals, help: v.help ?? false, version: v.version ?? false };
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `n` bytes as the shortest size text the options take back: `4G`, `64M`, `12k`, `4097`. */
export function sizeText(n: number): string {
  for (const [unit, k] of [['T', 4], ['G', 3], ['M', 2], ['k', 1]] as const) {
    if (n >= 1024 ** k && n % 1024 ** k === 0) return `${n / 1024 ** k}${unit}`;
  }
  return String(n);
}

/** Refuses a `--cache-size` above `max` (what the command's cache can hold) or below `min`, naming the flag and the limit. */
export function checkCacheSize(o: { cacheSize: number }, max: number, what: string, min = 0): number {
  if (o.cacheSize > max) throw new CliError(`--cache-size ${sizeText(o.cacheSize)}: at most ${sizeText(max)} (${max} bytes) for ${what}`);
  if (o.cacheSize < min) throw new CliError(`--cache-size ${sizeText(o.cacheSize)}: at least one page (${min} bytes) for ${what}`);
  return o.cacheSize;
}

/** `--cache-size` for the page cache of a written file (FilePageStore): at most what one buffer can hold. */
export function fileCacheSize(o: { cacheSize: number }): number {
  return checkCacheSize(o, bufferConstants.MAX_LENGTH, 'the page cache of an output file');
}

/** The output a command writes: `-o/--output`, or its older alias `--out`; both must agree. */
export function outputOption(o: { output: string | undefined; out: string | undefined }): string | undefined {
  if (o.output !== undefined && o.out !== undefined && o.output !== o.out) {
    throw new CliError(`-o ${o.output} and --out ${o.out} name two outputs; give one`, true);
  }
  return o.output ?? o.out;
}

export { plural } from '../format/sizes.js';

/** Parses `64M`, `4k`, `1G`, `512KiB`, `1048576` (binary multiples). */
export function parseSize(text: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (m === null) throw new CliError(`${name}: not a size: ${JSON.stringify(text)} (use e.g. 4096, 64M, 1G)`);
  const value = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(value) || value <= 0) throw new CliError(`${name}: size out of range: ${text}`);
  return value;
}

function parseThreads(text: string): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_THREADS) throw new CliError(`--threads must be a whole number from 1 to ${MAX_THREADS}, not ${text}`);
  return value;
}

function parseLevel(text: string): number {
  const value = /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < -7 || value > 22) throw new CliError(`--level must be a whole number from -7 to 22, not ${text}`);
  return value;
}

function parsePageSize(text: string): number {
  const value = parseSize(text, '--page-size');
  if (value < 1024 || value > 16384 || (value & (value - 1)) !== 0) {
    throw new CliError(`--page-size must be a power of two from 1024 to 16384, not ${text}`);
  }
  return value;
}
