#!/usr/bin/env node
// Runs shell commands at the same time and fails when any of them fails (after all have
// ended). Each command's output is printed in one piece when it ends (no interleaving),
// except with --live, where the LAST command's output goes straight to the terminal as it
// comes (the others' still in one piece each, when they end).
//
// `npm test` runs the two type-checks beside `tsup && vitest run ...` this way, the
// type-checks under `nice`: they only read the sources, nothing waits for them, and at a
// lower priority they take the CPU that tsup (mostly one thread) and vitest (waiting on
// child processes, files and workers) leave idle on two cores, instead of slowing them.
// Usage (from an npm script, node_modules/.bin on PATH):
//   node test/helpers/run-parallel.mjs [--live] "cmd 1" "cmd 2" ...
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const live = args[0] === '--live';
const commands = live ? args.slice(1) : args;
if (commands.length === 0) {
  console.error('usage: run-parallel.mjs [--live] "command" ...');
  process.exit(2);
}

const results = await Promise.all(
  commands.map(
    (command, i) =>
      new Promise((resolve) => {
        const started = Date.now();
        const streamed = live && i === commands.length - 1;
        const child = spawn(command, { shell: true, stdio: ['ignore', streamed ? 'inherit' : 'pipe', streamed ? 'inherit' : 'pipe'] });
        /** @type {Buffer[]} */
        const output = [];
        child.stdout?.on('data', (b) => output.push(b));
        child.stderr?.on('data', (b) => output.push(b));
        child.on('error', (err) => output.push(Buffer.from(`${err.message}\n`)));
        child.on('close', (code, signal) => {
          const ok = code === 0;
          const seconds = ((Date.now() - started) / 1000).toFixed(1);
          process.stdout.write(`> ${command} (${ok ? 'ok' : signal ?? `exit ${code}`}, ${seconds} s)\n`);
          process.stdout.write(Buffer.concat(output));
          resolve(ok);
        });
      }),
  ),
);
if (results.some((ok) => !ok)) process.exitCode = 1;
