#!/usr/bin/env node
// Runs shell commands at the same time and fails when any of them fails; each command's
// output is printed in one piece when it ends (no interleaving). `npm test` runs the two
// type-checks and the tsup build this way: each is mostly one thread, so on two cores they
// take about the time of the longest instead of the sum (measured on the 2-core VM).
// Usage (from an npm script, node_modules/.bin on PATH): node test/helpers/run-parallel.mjs "cmd 1" "cmd 2" ...
import { spawn } from 'node:child_process';

const commands = process.argv.slice(2);
if (commands.length === 0) {
  console.error('usage: run-parallel.mjs "command" ...');
  process.exit(2);
}

const results = await Promise.all(
  commands.map(
    (command) =>
      new Promise((resolve) => {
        const started = Date.now();
        const child = spawn(command, { shell: true, stdio: ['ignore', 'pipe', 'pipe'] });
        /** @type {Buffer[]} */
        const output = [];
        child.stdout.on('data', (b) => output.push(b));
        child.stderr.on('data', (b) => output.push(b));
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
