// The TypeScript-path encoder, measured in a child process: this file forked
// with XBZRLE_WASM=0 (read once per process, at first use), driven over IPC,
// so its measurements interleave with the parent's C and SIMD ones.
//
// The child answers `hello` (is the kernel off?), `load` (generate a
// scenario, encode it once, report the output summary), `encode` (measure
// encodeXbzrle over all pages) and `dump` (write the last output in
// baseline.c's dump format to a file).
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PAGE_SIZE, generate, selectScenarios } from '../scenarios.mjs';
import { encodePass, pageViews, summary } from './outputs.mjs';
import { kernelActive, loadPackage } from './package.mjs';
import { measure } from './timing.mjs';

/**
 * @typedef {{ type: 'hello' } | { type: 'load', scenario: string, size: number } | { type: 'encode', maxTime: number } | { type: 'dump', path: string }} Request
 * @typedef {{ ok: true } & Record<string, unknown> | { ok: false, error: string }} Reply
 */

/** Benchmark.js minimum samples in the child (it always measured with the full run's). */
const MIN_SAMPLES = 5;

/**
 * The child side: answers the parent's requests until it disconnects.
 * @param {import('./package.mjs').Lib} lib
 */
export function serveTsWorker(lib) {
  const { encodeXbzrle } = lib;
  /** @type {{ oldViews: Uint8Array[], newViews: Uint8Array[], out: Uint8Array, dump: Buffer, size: number } | null} */
  let state = null;
  const loaded = () => {
    if (state === null) throw new Error('no scenario loaded');
    return state;
  };
  /**
   * @param {Request} msg
   * @returns {Record<string, unknown>}
   */
  const handle = (msg) => {
    switch (msg.type) {
      case 'hello':
        return { kernel: kernelActive(lib), node: process.version };
      case 'load': {
        state = null;
        const scenario = /** @type {import('../scenarios.mjs').Scenario} */ (selectScenarios([msg.scenario])[0]);
        const { old: oldBuf, new: newBuf } = generate(scenario, msg.size);
        const oldViews = pageViews(oldBuf);
        const newViews = pageViews(newBuf);
        const out = new Uint8Array(PAGE_SIZE);
        const pass = encodePass(encodeXbzrle, oldViews, newViews, () => out);
        state = { oldViews, newViews, out, dump: pass.dump, size: msg.size };
        return summary(pass);
      }
      case 'encode': {
        const { oldViews, newViews, out, size } = loaded();
        const pages = oldViews.length;
        let sink = 0;
        const m = measure(
          'TS encode',
          () => {
            let acc = 0;
            for (let i = 0; i < pages; i++) acc += encodeXbzrle(/** @type {Uint8Array} */ (oldViews[i]), /** @type {Uint8Array} */ (newViews[i]), out);
            sink ^= acc;
          },
          size,
          { maxTime: msg.maxTime, minSamples: MIN_SAMPLES },
        );
        return { ...m, sink };
      }
      case 'dump':
        writeFileSync(msg.path, loaded().dump);
        return {};
      default:
        throw new Error(`unknown message ${/** @type {{ type: string }} */ (msg).type}`);
    }
  };
  process.on('message', (/** @type {Request} */ msg) => {
    /** @type {Reply} */
    let reply;
    try {
      reply = { ok: true, ...handle(msg) };
    } catch (err) {
      reply = { ok: false, error: String((err instanceof Error && err.stack) || err) };
    }
    /** @type {NonNullable<typeof process.send>} */ (process.send)(reply);
  });
}

/** The parent side: request/response over IPC with a forked child. */
export class TsChild {
  #child;
  #exited;

  constructor() {
    this.#child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, XBZRLE_WASM: '0' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#exited = once(this.#child, 'exit');
  }

  /**
   * @param {Request} msg
   * @returns {Promise<Record<string, unknown>>}
   */
  async #call(msg) {
    /** @type {Promise<Reply>} */
    const reply = Promise.race([
      once(this.#child, 'message').then(([m]) => m),
      this.#exited.then(([code]) => ({ ok: false, error: `TS worker exited (status ${code})` })),
    ]);
    this.#child.send(msg);
    const m = await reply;
    if (!m.ok) throw new Error(`TS worker: ${m.error}`);
    return m;
  }

  /** @returns {Promise<{ kernel: boolean, node: string }>} */
  async hello() {
    return /** @type {any} */ (await this.#call({ type: 'hello' }));
  }

  /**
   * Generates and encodes a scenario in the child.
   * @param {string} scenario
   * @param {number} size
   * @returns {Promise<import('./outputs.mjs').Summary>}
   */
  async load(scenario, size) {
    const { ok, ...s } = await this.#call({ type: 'load', scenario, size });
    return /** @type {any} */ (s);
  }

  /**
   * Measures the loaded scenario's encode in the child.
   * @param {number} maxTime
   * @returns {Promise<import('./timing.mjs').Measurement>}
   */
  async encode(maxTime) {
    return /** @type {any} */ (await this.#call({ type: 'encode', maxTime }));
  }

  /**
   * Writes the loaded scenario's output (dump format) to `path`.
   * @param {string} path
   */
  async dump(path) {
    await this.#call({ type: 'dump', path });
  }

  close() {
    this.#child.disconnect();
  }
}

// Forked by TsChild: serve.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) {
  serveTsWorker(await loadPackage());
}
