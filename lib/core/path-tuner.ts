/**
 * Chooses, group of pages by group, between two ways of doing the same work
 * that give the same result (the encoder's worker pool, or the calling
 * thread alone), by the time per page each took lately: the pool is tried
 * first, then the thread alone once, then the faster one is kept and the
 * other tried again now and then: every {@link RETRY_MIN} groups while the
 * two are close, less often the further apart they are (a try of the slower
 * path costs the difference), so that the tries take about
 * {@link TRY_BUDGET} of the time, up to every {@link RETRY_MAX} groups. On a
 * machine whose cores are busy (or whose memory bandwidth one thread already
 * uses up), more threads are then never much slower than one; on a machine
 * with many free cores, where the pool is many times faster, the tries of the
 * thread alone do not eat its gain.
 *
 * A path's figure is the least time per page of its last {@link KEPT}
 * samples: on a shared machine a sample is only ever slowed (page faults,
 * another process taking the core, a worker's code still being compiled),
 * so one slow group must not keep a path out for long. A sample is at least
 * {@link SAMPLE_PAGES} pages (the time of shorter runs, such as the pages an
 * encoder does alone between two output chunks, is added up until then): a
 * few pages that happened to go fast must not stand for a path.
 */

/** Groups between two tries of the path not chosen, at least (paths about as fast)... */
const RETRY_MIN = 8;
/** ...and at most (one path many times faster than the other). */
const RETRY_MAX = 64;
/** The share of the time the tries of the slower path may cost, about: it sets the groups between tries. */
const TRY_BUDGET = 0.05;
/** Samples kept per path. */
const KEPT = 3;
/** Pages a sample is made of, at least. */
const SAMPLE_PAGES = 256;

/** See {@link forcePoolPath}. */
let forced: 'pool' | 'alternate' | 'alone' | null = null;
/** Groups an encoder of one thread took in runs or page by page, while forced to alternate. */
let alternations = 0;

/**
 * @internal For tests: every group to the pool (`'pool'`), the pool and the
 * thread alone in turns (`'alternate'`), every group page by page on the
 * calling thread (`'alone'`: the reference path, no pool and no runs), or the
 * tuner's choice (`null`, the default). Process-wide.
 */
export function forcePoolPath(mode: 'pool' | 'alternate' | 'alone' | null): void {
  forced = mode;
}

/**
 * True when an encoder of one thread encodes its next group in runs (the
 * kernel's `step_run`) rather than page by page: always, unless a test
 * forced the page-by-page path (or the two in turns) with {@link forcePoolPath}.
 */
export function aloneInRuns(): boolean {
  if (forced === 'alone') return false;
  return forced !== 'alternate' || ++alternations % 2 === 1;
}

/** True when a test forced groups onto the pool ({@link forcePoolPath} `'pool'` or `'alternate'`): a pool is then started with the first group. */
export function poolForced(): boolean {
  return forced === 'pool' || forced === 'alternate';
}

export class PathTuner {
  private readonly pool = new PathTimes();
  private readonly alone = new PathTimes();
  private groups = 0;
  /** Groups since the path not chosen was last tried. */
  private sinceTry = 0;

  /** True when the next group should go to the pool. */
  usePool(): boolean {
    const g = ++this.groups;
    if (forced !== null) return forced === 'pool' || (forced === 'alternate' && g % 2 === 1);
    const pool = this.pool.figure();
    if (pool === 0) return true;
    const alone = this.alone.figure();
    if (alone === 0) return false;
    const poolFaster = pool <= alone;
    // A try of the slower path costs (slower / faster - 1) groups of the faster one.
    const ratio = poolFaster ? alone / pool : pool / alone;
    const every = Math.min(RETRY_MAX, Math.max(RETRY_MIN, Math.round((ratio - 1) / TRY_BUDGET)));
    if (++this.sinceTry < every) return poolFaster;
    this.sinceTry = 0;
    return !poolFaster;
  }

  /**
   * Forgets what was measured: the next group goes to the pool, the one after
   * it alone, as at the start. For a new round, whose pages may cost nothing
   * like the last round's (a first round is all misses and page faults).
   */
  reset(): void {
    this.pool.clear();
    this.alone.clear();
    this.groups = 0;
    this.sinceTry = 0;
  }

  /** Records `ms` spent on `pages` pages, on the pool or alone. */
  record(pool: boolean, pages: number, ms: number): void {
    if (pages <= 0 || !(ms >= 0)) return;
    (pool ? this.pool : this.alone).add(pages, ms);
  }
}

/** One path's last samples of time per page (ms), and the pages and time not yet making a sample. */
class PathTimes {
  private readonly samples = new Float64Array(KEPT);
  private next = 0;
  private pages = 0;
  private ms = 0;

  add(pages: number, ms: number): void {
    this.pages += pages;
    this.ms += ms;
    if (this.pages < SAMPLE_PAGES) return;
    this.samples[this.next] = Math.max(this.ms / this.pages, 1e-9);
    this.next = (this.next + 1) % KEPT;
    this.pages = this.ms = 0;
  }

  /** The least of the samples taken (0 when none was). */
  figure(): number {
    let least = 0;
    for (const s of this.samples) if (s > 0 && (least === 0 || s < least)) least = s;
    return least;
  }

  clear(): void {
    this.samples.fill(0);
    this.next = 0;
    this.pages = this.ms = 0;
  }
}
