/**
 * The layers of lib/ import each other in one direction only: no import cycle
 * between folders (a folder's subfolders count as the folder: codec/wasm is
 * codec), and the pure layers name no Node module. Type-only imports count:
 * they couple the layers as much as value imports do.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LIB = fileURLToPath(new URL('../lib/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The layer a file belongs to: its top folder under lib/, or the file's own name for files at the top. */
function layer(file: string): string {
  const rel = relative(LIB, file).split(/[\\/]/);
  return rel.length === 1 ? rel[0]!.replace(/\.ts$/, '') : rel[0]!;
}

/** Relative module specifiers a source imports or re-exports (static, type-only and dynamic). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;'"]*?from\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

function graph(): Map<string, Map<string, string>> {
  const edges = new Map<string, Map<string, string>>(); // from layer -> to layer -> an example "file -> file"
  for (const file of sources(LIB)) {
    const from = layer(file);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      const to = layer(target);
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      edges.get(from)!.set(to, `${relative(LIB, file)} -> ${relative(LIB, target)}`);
    }
  }
  return edges;
}

/** Every cycle's path of layers, with the import that closes each step. */
function cycles(edges: Map<string, Map<string, string>>): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of edges.get(node)?.keys() ?? []) {
      if (state.get(next) === 'open') {
        const loop = [...stack.slice(stack.indexOf(next)), next];
        found.push(loop.map((n, i) => (i === 0 ? n : `${n} (${edges.get(loop[i - 1]!)!.get(n)})`)).join(' -> '));
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of edges.keys()) if (!state.has(node)) visit(node);
  return found;
}

describe('layering of lib/', () => {
  it('has no import cycle between folders', () => {
    expect(cycles(graph())).toEqual([]);
  });

  it('finds a cycle when there is one (the check itself works)', () => {
    const edges = graph();
    edges.set('codec', new Map([...(edges.get('codec') ?? []), ['cli', 'codec/x.ts -> cli/y.ts']]));
    expect(cycles(edges).some((c) => c.startsWith('codec') || c.includes('-> codec'))).toBe(true);
  });

  it('keeps the codec at the bottom: it imports only the errors module', () => {
    expect([...(graph().get('codec')?.keys() ?? [])]).toEqual(['errors']);
  });

  it('keeps the pure layers free of Node modules', () => {
    const pure = ['codec', 'cache', 'format', 'core', 'web'];
    const offenders = sources(LIB)
      .filter((f) => pure.includes(layer(f)))
      .flatMap((f) => specifiers(readFileSync(f, 'utf8')).filter((s) => s.startsWith('node:') || s === 'readable-stream').map((s) => `${relative(LIB, f)}: ${s}`));
    expect(offenders).toEqual([]);
  });
});
