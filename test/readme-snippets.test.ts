/**
 * Every TypeScript code block of README.md compiles, with `tsc --strict`,
 * against the published types (the packed tarball installed into an empty
 * project), so the README cannot drift from the API: a name that is not
 * exported, a method that does not exist or a wrong argument fails here.
 *
 * Shell and plain blocks are not compiled; library usage must not hide in a
 * `js` block. The snippets' free variables (the pages, the socket) are
 * declared once, globally, below. Each snippet is an ES module (`.mts`, so
 * top-level await works); all of them compile in a Node project (`lib`
 * ES2022, `@types/node`), and the `xbzrle/web` ones also in a project with
 * the `lib` entries the README names for it and no Node types.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, createPackedProject, type Diagnostic, type PackedProject } from './helpers/packed-project.js';

interface Snippet {
  /** README line of the opening fence. */
  line: number;
  lang: string;
  code: string;
}

function codeBlocks(markdown: string): Snippet[] {
  const blocks: Snippet[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})\s*([\w+-]*)/.exec(lines[i]!);
    if (open === null) continue;
    const fence = open[1]!;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith(fence); i++) body.push(lines[i]!);
    blocks.push({ line: start + 1, lang: open[2]!.toLowerCase(), code: body.join('\n') + '\n' });
  }
  return blocks;
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = codeBlocks(README);
const snippets = blocks.filter((b) => b.lang === 'ts' || b.lang === 'typescript');
const isWeb = (s: Snippet): boolean => /from\s+['"]xbzrle\/web['"]/.test(s.code);
const file = (s: Snippet): string => `snippets/readme-line-${s.line}.mts`;

/** The free variables of the snippets: what the surrounding application would have. */
const WEB_GLOBALS = `
declare const image: Uint8Array;
declare const image2: Uint8Array;
`;
const NODE_GLOBALS = `${WEB_GLOBALS}
declare const oldPage: Uint8Array;
declare const newPage: Uint8Array;
declare const ram: Uint8Array;
declare const dirtyPage: Uint8Array;
declare const socket: import('node:net').Socket;
`;

/** Must not compile: they prove a missing export and a missing method are caught. */
const CONTROLS: Record<string, string> = {
  'controls/missing-export.mts': `import { XbzrleEncodeStream, encodeXbzrleStream } from 'xbzrle'\nvoid XbzrleEncodeStream, encodeXbzrleStream\n`,
  'controls/missing-method.mts': `import { XbzrleEncodeStream } from 'xbzrle'\nnew XbzrleEncodeStream().flushRound()\n`,
};

const base = { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true };
let project: PackedProject | undefined;
let nodeDiagnostics: Diagnostic[] = [];
let webDiagnostics: Diagnostic[] = [];

beforeAll(async () => {
  project = createPackedProject('xbzrle-readme-');
  for (const s of snippets) project.write(file(s), s.code);
  for (const [path, code] of Object.entries(CONTROLS)) project.write(path, code);
  project.write('node-globals.d.ts', NODE_GLOBALS);
  project.write('web-globals.d.ts', WEB_GLOBALS);
  project.write(
    'tsconfig.node.json',
    JSON.stringify({ compilerOptions: { ...base, lib: ['ES2022'], types: ['node'] }, files: ['node-globals.d.ts', ...snippets.map(file), ...Object.keys(CONTROLS)] }),
  );
  project.write(
    'tsconfig.web.json',
    JSON.stringify({ compilerOptions: { ...base, lib: ['ES2022', 'DOM', 'DOM.AsyncIterable'], types: [] }, files: ['web-globals.d.ts', ...snippets.filter(isWeb).map(file)] }),
  );
  [nodeDiagnostics, webDiagnostics] = await Promise.all([project.tsc('tsconfig.node.json'), project.tsc('tsconfig.web.json')]);
}, 180_000);

afterAll(() => {
  project?.remove();
});

describe('README.md code blocks', () => {
  it('has its library usage in TypeScript blocks (js blocks are not compiled)', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(4);
    expect(snippets.some(isWeb)).toBe(true);
    const js = blocks.filter((b) => ['js', 'javascript', 'mjs', 'cjs', 'jsx', 'tsx'].includes(b.lang)).map((b) => `README.md:${b.line} (${b.lang})`);
    expect(js).toEqual([]);
  });

  it.each(snippets.map((s) => [s.line, s] as const))('compiles the block at line %i against the packed types', (_line, s) => {
    expect(nodeDiagnostics.filter((d) => d.file === file(s)).map((d) => d.text)).toEqual([]);
    if (isWeb(s)) expect(webDiagnostics.filter((d) => d.file === file(s)).map((d) => d.text)).toEqual([]);
  });

  it('compiles the xbzrle/web blocks with the lib entries the README names for them', () => {
    expect(README.includes('"lib": ["ES2022", "DOM", "DOM.AsyncIterable"]'), 'the README names these lib entries').toBe(true);
    expect(webDiagnostics.map((d) => d.text)).toEqual([]);
  });

  it('would catch a name that is not exported and a method that does not exist', () => {
    const codes = (path: string): string[] => nodeDiagnostics.filter((d) => d.file === path).map((d) => /error (TS\d+)/.exec(d.text)?.[1] ?? d.text);
    const missing = codes('controls/missing-export.mts');
    expect(missing).toHaveLength(1);
    expect(['TS2305', 'TS2724']).toContain(missing[0]); // "has no exported member" (with or without a suggestion)
    expect(codes('controls/missing-method.mts')).toEqual(['TS2339']);
    const elsewhere = nodeDiagnostics.filter((d) => !d.file.startsWith('controls/') && !d.file.startsWith('snippets/'));
    expect(elsewhere.map((d) => d.text)).toEqual([]);
  });
});
