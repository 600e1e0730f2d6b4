/**
 * A consumer project as a new user makes one: the packed tarball (`npm pack`
 * of the built dist/; `npm test` builds before vitest) installed into an empty
 * temporary folder, with `typescript` and `@types/node` linked in from this
 * repository's node_modules (no network, no install of other packages), and
 * `tsc` run on files written there.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** One `tsc` diagnostic. */
export interface Diagnostic {
  /** Path relative to the project (`node_modules/xbzrle/dist/index.d.ts`, `src/a.mts`), or '' for global ones. */
  file: string;
  /** The whole message, continuation lines included, e.g. `src/a.mts(3,7): error TS2339: …`. */
  text: string;
}

export interface PackedProject {
  /** The project folder (holds node_modules/xbzrle). */
  readonly dir: string;
  /** Writes `text` to `path` (relative to the project), creating folders. */
  write(path: string, text: string): void;
  /** Runs `tsc -p config ...args` in the project; resolves to its diagnostics (empty when it compiled). */
  tsc(config: string, args?: readonly string[]): Promise<Diagnostic[]>;
  /** Removes the temporary folder. */
  remove(): void;
}

/** Packs the repository and installs the tarball into a new temporary project (about 3 s, offline). */
export function createPackedProject(prefix: string): PackedProject {
  if (!existsSync(join(ROOT, 'dist', 'index.d.ts'))) {
    throw new Error(`${join(ROOT, 'dist')} is not built: run 'npm run build' first (npm test does it before vitest)`);
  }
  const base = mkdtempSync(join(tmpdir(), prefix));
  try {
    const out = execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', base], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const info = JSON.parse(out) as { filename: string }[];
    const tarball = join(base, info[0]!.filename);
    const dir = join(base, 'consumer');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', '--ignore-scripts', tarball], {
      cwd: dir,
      stdio: 'ignore',
    });
    // The two packages a TypeScript user adds, linked from ours (same versions as the repository's own type-check).
    mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', 'typescript'), join(dir, 'node_modules', 'typescript'), 'dir');
    symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'), 'dir');
    const tscBin = join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    return {
      dir,
      write(path, text) {
        mkdirSync(dirname(join(dir, path)), { recursive: true });
        writeFileSync(join(dir, path), text);
      },
      tsc(config, args = []) {
        return new Promise((resolve, reject) => {
          execFile(process.execPath, [tscBin, '-p', config, '--pretty', 'false', ...args], { cwd: dir, encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
            // tsc exits with 1 or 2 when it reports diagnostics; anything else is a failure to run.
            const code = (err as { code?: unknown } | null)?.code;
            if (err !== null && code !== 1 && code !== 2) reject(new Error(`tsc -p ${config} failed: ${err.message}\n${stderr}`));
            else resolve(parseDiagnostics(stdout));
          });
        });
      },
      remove() {
        rmSync(base, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(base, { recursive: true, force: true });
    throw err;
  }
}

/** Splits `tsc --pretty false` output into diagnostics (a new one starts at each unindented line). */
export function parseDiagnostics(output: string): Diagnostic[] {
  const list: Diagnostic[] = [];
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    const last = list[list.length - 1];
    if (/^\s/.test(line) && last !== undefined) {
      last.text += '\n' + line;
      continue;
    }
    const m = /^(.+?)\(\d+,\d+\): /.exec(line);
    list.push({ file: m?.[1] ?? '', text: line });
  }
  return list;
}
