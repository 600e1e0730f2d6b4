#!/usr/bin/env node
// `npm run bench:peers`: installs the optional peer compressors of the bench
// (lz4-napi, snappy) under bench/.build/peers/ (gitignored), outside the root
// package.json and lockfile: they are native napi-rs packages whose lockfile
// entries list platform packages that some registry mirrors lack, which would
// break `npm ci` for everyone. bench/run.mjs loads them from there when
// present and reports them as skipped otherwise.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { PEERS_DIR } from './peers.mjs';

const PACKAGES = ['lz4-napi@^2.10.0', 'snappy@^7.4.3'];

mkdirSync(PEERS_DIR, { recursive: true });
const manifest = `${PEERS_DIR}/package.json`;
if (!existsSync(manifest)) {
  writeFileSync(manifest, `${JSON.stringify({ name: 'xbzrle-bench-peers', private: true, description: 'optional peers of bench/run.mjs (npm run bench:peers)' }, null, 2)}\n`);
}
const npmArgs = ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', PEERS_DIR, ...PACKAGES];
// Under `npm run`, npm_execpath is npm's own CLI script: run it with this node.
const execPath = process.env.npm_execpath;
const r = execPath && /npm-cli\.js$/.test(execPath)
  ? spawnSync(process.execPath, [execPath, ...npmArgs], { stdio: 'inherit' })
  : spawnSync('npm', npmArgs, { stdio: 'inherit', shell: process.platform === 'win32' });
if (r.error || r.status !== 0) {
  process.stderr.write(`bench:peers: npm install failed (${r.error?.message ?? `status ${r.status}`}); the bench runs without these peers\n`);
  process.exit(1);
}
process.stdout.write(`bench:peers: installed ${PACKAGES.join(', ')} in ${PEERS_DIR}\n`);
