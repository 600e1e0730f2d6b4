/**
 * The README's command-line walkthrough runs as written in a clone (after the
 * build `npm test` does), and leaves the clone as it was: its outputs go to a
 * scratch folder.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertBuilt } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The ```sh block that follows the "### 3. The command line" heading. */
function walkthrough(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### 3. The command line'));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  if (block === null) throw new Error('no sh block in the command-line section of README.md');
  return block[1]!;
}

describe('README walkthrough', () => {
  it('runs as written and leaves nothing in the clone', () => {
    assertBuilt();
    const script = walkthrough();
    // Names the walkthrough writes: none may appear in the clone.
    const outputs = [...script.matchAll(/(?:-o|>)\s+([\w.]+)/g)].map((m) => m[1]!);
    expect(outputs).toEqual(expect.arrayContaining(['sparse', 'mixed', 'ram.xd', 'restored.bin', 'rounds.xs', 'final.bin']));
    const before = outputs.filter((o) => existsSync(join(ROOT, o)));
    // The walkthrough's `mktemp -d` lands in a folder of our own, removed afterwards (about 130 MB of outputs).
    const scratch = mkdtempSync(join(tmpdir(), 'xbzrle-walkthrough-'));
    let out: string;
    try {
      out = execFileSync('bash', ['-e', '-o', 'pipefail', '-c', `shopt -s expand_aliases\n${script}`], {
        cwd: ROOT,
        env: { ...process.env, TMPDIR: scratch },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 120_000,
      });
      // The outputs went to the scratch folder (so they are removed with it).
      expect(readdirSync(scratch)).toHaveLength(1);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    expect(out).toMatch(/QEMU migration stream/);
    expect(out).toMatch(/xbzrle delta file/);
    expect(outputs.filter((o) => existsSync(join(ROOT, o)))).toEqual(before);
  }, 180_000);
});
