// Deterministic page-buffer scenarios for the XBZRLE benchmark.
//
// Every scenario is a pair of equally long buffers (`old`, `new`) made of
// 4 KiB pages. `old` is seeded pseudo-random bytes; `new` is `old` with a
// changed segment of LEN bytes starting every STEP bytes across the whole
// buffer (segments run on across page boundaries). Each byte of a segment is
// XORed with a non-zero pseudo-random byte, so it always differs from the old
// value and every segment is exactly one run of changed bytes.
//
// Plain ESM JavaScript so it runs under `node` without a TypeScript step.

/** Page size used by every scenario. */
export const PAGE_SIZE = 4096;

/** Default buffer size: 64 MiB. */
export const DEFAULT_SIZE = 64 * 1024 * 1024;

/** Buffer size of `--quick` runs: 4 MiB. */
export const QUICK_SIZE = 4 * 1024 * 1024;

/**
 * @typedef {object} Scenario
 * @property {string} name
 * @property {'segments' | 'unchanged' | 'zero-old'} kind
 * @property {number} [step] distance between the starts of two changed segments
 * @property {number} [len] length of a changed segment
 * @property {string} description
 */

/** @type {readonly Scenario[]} */
export const SCENARIOS = Object.freeze([
  { name: 'SPARSE', kind: 'segments', step: 1111, len: 12, description: '12 changed bytes every 1111' },
  { name: 'MEDIUM', kind: 'segments', step: 701, len: 33, description: '33 changed bytes every 701' },
  { name: 'DENSE', kind: 'segments', step: 203, len: 41, description: '41 changed bytes every 203' },
  { name: 'VERY-DENSE', kind: 'segments', step: 121, len: 43, description: '43 changed bytes every 121' },
  { name: 'ONE-BYTE', kind: 'segments', step: 1024, len: 1, description: '1 changed byte every 1024' },
  { name: 'UNCHANGED', kind: 'unchanged', description: 'new is an identical copy of old' },
  { name: 'ZERO-OLD', kind: 'zero-old', description: 'old all zero, new random (every page overflows)' },
]);

/**
 * mulberry32: a tiny 32-bit PRNG. Returns a function giving the next
 * unsigned 32-bit value on each call.
 * @param {number} seed
 * @returns {() => number}
 */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * Fills `buf` with pseudo-random bytes from `rand`, four bytes per call.
 * @param {Uint8Array} buf
 * @param {() => number} rand
 */
export function fillRandom(buf, rand) {
  const n = buf.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = rand();
    buf[i] = v;
    buf[i + 1] = v >>> 8;
    buf[i + 2] = v >>> 16;
    buf[i + 3] = v >>> 24;
  }
  if (i < n) {
    let v = rand();
    for (; i < n; i++, v >>>= 8) buf[i] = v;
  }
}

/** Seed of the old buffer of every scenario. */
const OLD_SEED = 0x0b5e55ed;
/** Seed of the change bytes (and of ZERO-OLD's new buffer). */
const CHANGE_SEED = 0x00c0ffee;

/**
 * Generates the (old, new) pair of a scenario. Deterministic: the same
 * scenario and size always give the same bytes.
 *
 * @param {Scenario} scenario
 * @param {number} [size] bytes per buffer, a positive multiple of PAGE_SIZE
 * @returns {{ old: Uint8Array, new: Uint8Array }}
 */
export function generate(scenario, size = DEFAULT_SIZE) {
  if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
    throw new RangeError(`size must be a positive multiple of ${PAGE_SIZE}, got ${size}`);
  }
  // Separate ArrayBuffers, so neither buffer aliases the other.
  const oldBuf = new Uint8Array(size);
  const newBuf = new Uint8Array(size);
  switch (scenario.kind) {
    case 'zero-old':
      // old stays all zero.
      fillRandom(newBuf, mulberry32(CHANGE_SEED));
      break;
    case 'unchanged':
      fillRandom(oldBuf, mulberry32(OLD_SEED));
      newBuf.set(oldBuf);
      break;
    case 'segments': {
      const { step = 0, len = 0 } = scenario;
      if (!(step > 0 && len > 0 && len <= step)) throw new RangeError(`bad scenario ${scenario.name}`);
      fillRandom(oldBuf, mulberry32(OLD_SEED));
      newBuf.set(oldBuf);
      const rand = mulberry32(CHANGE_SEED);
      for (let start = 0; start < size; start += step) {
        const end = Math.min(start + len, size);
        for (let j = start; j < end; j++) {
          // 1..255: never 0, so the byte always changes.
          const x = (rand() % 255) + 1;
          newBuf[j] = oldBuf[j] ^ x;
        }
      }
      break;
    }
    default:
      throw new Error(`unknown scenario kind ${String(scenario.kind)}`);
  }
  return { old: oldBuf, new: newBuf };
}

/**
 * Finds scenarios by name (case-insensitive).
 * @param {string[]} names
 * @returns {Scenario[]}
 */
export function selectScenarios(names) {
  if (names.length === 0) return [...SCENARIOS];
  return names.map((name) => {
    const s = SCENARIOS.find((x) => x.name.toLowerCase() === name.toLowerCase());
    if (s === undefined) throw new Error(`unknown scenario ${name}; known: ${SCENARIOS.map((x) => x.name).join(', ')}`);
    return s;
  });
}
