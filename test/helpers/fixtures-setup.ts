/**
 * Global setup (vitest.config.ts): a folder for the run's decompressed fixtures
 * (`gunzipFile` in test/helpers/fixtures.ts), removed when the run ends. Every project
 * of one run shares it: the folder is named after the vitest process.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

export default function setup(project: TestProject): () => void {
  const dir = join(tmpdir(), `xbzrle-test-fixtures-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  project.provide('gunzipCache', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
