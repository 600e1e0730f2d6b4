// The options of bench/run.mjs: parsing, defaults (full and --quick) and checks.
import { parseArgs } from 'node:util';
import { DEFAULT_SIZE, PAGE_SIZE, QUICK_SIZE, selectScenarios } from '../scenarios.mjs';

export const MiB = 1024 * 1024;

export const HELP = `usage: node bench/run.mjs [options]

  --quick            small buffers (4 MiB), one round, short timings; a CI
                     smoke test (fails only on a mismatch or a crash)
  --size <MiB>       buffer size per scenario (default 64, quick 4)
  --reps <n>         interleaved rounds per scenario; best of each kept
                     (default 4, quick 1)
  --time <seconds>   Benchmark.js maxTime per JS measurement and C loop time
                     per round (default 0.5; quick 0.05)
  --pairs <n>        paired C/SIMD samples per scenario (default 40, quick 3;
                     0 skips the paired phase)
  --stream-runs <n>  timed repetitions of each stream measurement, after one
                     untimed warm-up; best reported (default 3, quick 1)
  --peer-size <MiB>  bytes per scenario for the peer compressors
                     (default 16, quick 4)
  --only <names>     comma-separated scenario names (e.g. SPARSE,DENSE)
  --cpu <n>          Linux: pin this process, its threads and its children
                     (the C baseline, the TS child) to CPU n with taskset, so
                     C and JavaScript run on the same core
  --no-c             skip the C baseline
  --no-ts            skip the TypeScript-path child process
  --no-stream        skip the stream measurements
  --no-peers         skip the peer compressors
  --no-memory        skip bench/memory.mjs (the 1 GiB peak-memory run,
                     in its own process; about 1 s, so --quick runs it too)
  --json <file>      also write the results as JSON
  --threads [list]   instead: the threads scaling (bench/threads.mjs: encoder
                     and decoder on 1, 2, 4, 8 threads, or the list given)
                     and the end-to-end jobs (bench/jobs.mjs --threads)
  --jobs             instead: the end-to-end jobs and the in-process pipeline
                     (bench/jobs.mjs, bench/pipeline.mjs)
  -h, --help         this text
`;

/**
 * @typedef {object} Options
 * @property {boolean} quick
 * @property {number} size bytes per scenario
 * @property {number} reps interleaved rounds per scenario
 * @property {number} jsMaxTime Benchmark.js maxTime (seconds) per JS measurement
 * @property {number} cSeconds C loop time (seconds) per round
 * @property {number} pairs paired turns per scenario (0: no paired phase)
 * @property {number} streamRuns timed runs of each stream measurement
 * @property {number} peerSize bytes per scenario for the peers
 * @property {import('../scenarios.mjs').Scenario[]} scenarios
 * @property {number | null} cpu CPU to pin to, or null
 * @property {boolean} c run the C baseline
 * @property {boolean} ts run the TS-path child
 * @property {boolean} stream run the stream measurements
 * @property {boolean} peers run the peers
 * @property {boolean} memory run bench/memory.mjs
 * @property {string | undefined} json where to write the JSON results
 * @property {boolean} tsWorker this process is the TS-path child (internal)
 */

/** A bad option: `withHelp` when the usage text should follow the message. */
export class OptionError extends Error {
  /**
   * @param {string} message
   * @param {boolean} withHelp
   */
  constructor(message, withHelp) {
    super(message);
    this.withHelp = withHelp;
  }
}

/** @param {string} message @returns {never} */
function bad(message) {
  throw new OptionError(message, false);
}

/**
 * Parses the command line of bench/run.mjs. Returns 'help' for -h/--help.
 * @param {string[]} argv
 * @param {number} cpuCount CPUs of this machine (the range of --cpu)
 * @returns {Options | 'help'}
 */
export function parseOptions(argv, cpuCount) {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        size: { type: 'string' },
        reps: { type: 'string' },
        time: { type: 'string' },
        'stream-runs': { type: 'string' },
        pairs: { type: 'string' },
        'peer-size': { type: 'string' },
        only: { type: 'string' },
        cpu: { type: 'string' },
        'no-c': { type: 'boolean', default: false },
        'no-ts': { type: 'boolean', default: false },
        'no-stream': { type: 'boolean', default: false },
        'no-peers': { type: 'boolean', default: false },
        'no-memory': { type: 'boolean', default: false },
        json: { type: 'string' },
        'ts-worker': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new OptionError(err instanceof Error ? err.message : String(err), true);
  }
  if (args.help) return 'help';

  const quick = args.quick;
  const size = args.size !== undefined ? Math.round(Number(args.size) * MiB) : quick ? QUICK_SIZE : DEFAULT_SIZE;
  if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) bad(`--size must give a positive multiple of ${PAGE_SIZE} bytes`);
  const reps = args.reps !== undefined ? Number(args.reps) : quick ? 1 : 4;
  if (!Number.isSafeInteger(reps) || reps < 1) bad('--reps must be a positive integer');
  const jsMaxTime = args.time !== undefined ? Number(args.time) : quick ? 0.05 : 0.5;
  if (!(jsMaxTime > 0)) bad('--time must be a positive number');
  const pairs = args.pairs !== undefined ? Number(args.pairs) : quick ? 3 : 40;
  if (!Number.isSafeInteger(pairs) || pairs < 0) bad('--pairs must be a non-negative integer');
  const streamRuns = args['stream-runs'] !== undefined ? Number(args['stream-runs']) : quick ? 1 : 3;
  if (!Number.isSafeInteger(streamRuns) || streamRuns < 1) bad('--stream-runs must be a positive integer');
  const peerSize = Math.min(size, args['peer-size'] !== undefined ? Math.round(Number(args['peer-size']) * MiB) : quick ? QUICK_SIZE : 16 * MiB);
  if (!Number.isSafeInteger(peerSize) || peerSize <= 0 || peerSize % PAGE_SIZE !== 0) bad(`--peer-size must give a positive multiple of ${PAGE_SIZE} bytes`);
  let scenarios;
  try {
    scenarios = selectScenarios(args.only ? args.only.split(',').map((s) => s.trim()).filter(Boolean) : []);
  } catch (err) {
    bad(err instanceof Error ? err.message : String(err));
  }
  const cpu = args.cpu !== undefined ? Number(args.cpu) : null;
  if (cpu !== null && (!Number.isSafeInteger(cpu) || cpu < 0 || cpu >= cpuCount)) bad(`--cpu must be a CPU number from 0 to ${cpuCount - 1}`);

  return {
    quick,
    size,
    reps,
    jsMaxTime,
    cSeconds: jsMaxTime,
    pairs,
    streamRuns,
    peerSize,
    scenarios,
    cpu,
    c: !args['no-c'],
    ts: !args['no-ts'],
    stream: !args['no-stream'],
    peers: !args['no-peers'],
    memory: !args['no-memory'],
    json: args.json,
    tsWorker: args['ts-worker'],
  };
}
