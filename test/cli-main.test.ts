/**
 * `main(argv, io)`, the command as a function: it resolves to the exit status
 * and never exits the process; terminals are whatever `io` says they are
 * (refusals, the progress bar); a failed run leaves no temp file behind; the
 * streams it was given keep no listener of it. In-process only (the bin's own
 * behaviour is pinned by the spawned tests in test/cli.test.ts).
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../lib/cli/main.js';
import { randomBytes, rng } from './helpers/bytes.js';
import { runMain, scratchFolders, tempFilesIn } from './helpers/cli.js';

const PS = 4096;
const scratch = scratchFolders('xbzrle-main-');

function pair(dir: string): { a: string; b: string } {
  const old = randomBytes(64 * PS, rng(3));
  const next = old.slice();
  for (let p = 0; p < 64; p += 3) next[p * PS + 17]! ^= 0x5a;
  const a = join(dir, 'a.img');
  const b = join(dir, 'b.img');
  writeFileSync(a, old);
  writeFileSync(b, next);
  return { a, b };
}

describe('main(argv, io)', () => {
  it('resolves to the exit status: 0, or 1 with the message on io.stderr', async () => {
    const ok = await runMain(['help']);
    expect(ok.code).toBe(0);
    expect(ok.stdout.toString()).toMatch(/^usage: xbzrle <command>/);
    const bad = await runMain(['frobnicate']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`xbzrle: unknown command "frobnicate"\nTry 'xbzrle --help'.\n`);
    expect(bad.stdout.length).toBe(0);
  });

  it('refuses binary output to a stdout that is a terminal, and a terminal as stdin', async () => {
    const dir = scratch.fresh('tty');
    const { a, b } = pair(dir);
    const refused = await runMain(['diff', a, b], { tty: { stdout: true } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^xbzrle: refusing to write binary data to a terminal/);
    const forced = await runMain(['diff', a, b, '-f'], { tty: { stdout: true } });
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout.length).toBeGreaterThan(0);
    const noInput = await runMain(['patch', a, '-o', join(dir, 'out')], { tty: { stdin: true } });
    expect(noInput.code).toBe(1);
    expect(noInput.stderr).toMatch(/^xbzrle: no input: stdin is a terminal/);
    expect(readdirSync(dir).sort()).toEqual(['a.img', 'b.img']);
  });

  it('draws the progress bar on a terminal stderr (after XBZRLE_PROGRESS_DELAY), not otherwise', async () => {
    const dir = scratch.fresh('progress');
    const { a, b } = pair(dir);
    const env = { XBZRLE_PROGRESS_DELAY: '0' };
    const drawn = await runMain(['diff', a, b, '-o', join(dir, 'd1')], { env, tty: { stderr: true } });
    expect(drawn.code, drawn.stderr).toBe(0);
    expect(drawn.stderr).toMatch(/\r\x1b\[Kdiff /);
    const plain = await runMain(['diff', a, b, '-o', join(dir, 'd2')], { env });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).not.toMatch(/\x1b\[K/);
  });

  it('removes the temp file of a run that fails, and leaves no listener on the streams it was given', async () => {
    const dir = scratch.fresh('fail');
    pair(dir);
    const stdin = Readable.from([Buffer.from('not a delta, not a RAM record stream')], { objectMode: false });
    const stdout = new PassThrough();
    const errors: Buffer[] = [];
    const stderr = new Writable({
      write(chunk: Buffer, _e, cb) {
        errors.push(Buffer.from(chunk));
        cb();
      },
    });
    const listeners = stdout.listenerCount('error');
    const code = await main(['decode', '-o', join(dir, 'out')], { stdin, stdout, stderr, env: {} });
    expect(code).toBe(1);
    expect(Buffer.concat(errors).toString()).toMatch(/^xbzrle: stdin: not a RAM record stream/);
    expect(tempFilesIn(dir)).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['a.img', 'b.img']);
    expect(stdout.listenerCount('error')).toBe(listeners);
  });
});
