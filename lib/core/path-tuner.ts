/**
 * Chooses, group of pages by group, between two ways of doing the same work
 * that give the same result (the encoder's worker pool, or the calling
 * thread alone), by the time per page each took lately: the pool is tried
 * first, then the thread alone once, then the faster one is kept, the other
 * tried again every {@link RETRY} groups. On a machine whose cores are busy
 * (or whose memory bandwidth one thread already uses up), more threads are
 * then never much slower than one.
 *
 * A path's figure is the least time per page of its last {@link KEPT}
 * samples: on a shared machine a sample is only ever slowed (page faults,
 * another process taking the core, a worker's code still being compiled),
 * so one slow group must not keep a path out for long. A sample is at least
 * {@link SAMPLE_PAGES} pages (the time of shorter runs, such as the pages an
 * encoder does alone between two output chunks, is added up until then): a
 * few pages that happened to go fast must not stand for a path.
 */

/** Groups between two tries of the path not chosen. */
const RETRY = 8;
/** Samples kept per path. */
const KEPT = 3;
/** Pages a sample is made of, at least. */
const SAMPLE_PAGES = 256;

/** See {@link forcePoolPath}. */
let forced: 'pool' | 'alternate' | null = null;

/**
 * @internal For tests: every group to the pool (`'pool'`), the pool and the
 * thread alone in turns (`'alternate'`), or the tuner's choice (`null`, the
 * default). Process-wide.
 */
export function forcePoolPath(mode: 'pool' | 'alternate' | null): void {
  forced = mode;
}

export class PathTuner {
  /** The last samples of time per page (ms), per path; 0: none yet. */
  private readonly pool = new Float64Array(KEPT);
  private readonly alone = new Float64Array(KEPT);
  private poolNext = 0;
  private aloneNext = 0;
  /** Pages and time not yet making a whole sample, per path. */
  private poolPages = 0;
  private poolTime = 0;
  private alonePages = 0;
  private aloneTime = 0;
  private groups = 0;

  /** True when the next group should go to the pool. */
  usePool(): boolean {
    const g = ++this.groups;
    if (forced !== null) return forced === 'pool' || g % 2 === 1;
    const pool = figure(this.pool);
    if (pool === 0) return true;
    const alone = figure(this.alone);
    if (alone === 0) return false;
    const poolFaster = pool <= alone;
    return g % RETRY === 0 ? !poolFaster : poolFaster;
  }

  /**
   * Forgets what was measured: the next group goes to the pool, the one after
   * it alone, as at the start. For a new round, whose pages may cost nothing
   * like the last round's (a first round is all misses and page faults).
   */
  reset(): void {
    this.pool.fill(0);
    this.alone.fill(0);
    this.poolNext = 0;
    this.aloneNext = 0;
    this.poolPages = this.poolTime = this.alonePages = this.aloneTime = 0;
    this.groups = 0;
  }

  /** Records `ms` spent on `pages` pages, on the pool or alone. */
  record(pool: boolean, pages: number, ms: number): void {
    if (pages <= 0 || !(ms >= 0)) return;
    if (pool) {
      this.poolPages += pages;
      this.poolTime += ms;
      if (this.poolPages < SAMPLE_PAGES) return;
      this.pool[this.poolNext] = Math.max(this.poolTime / this.poolPages, 1e-9);
      this.poolNext = (this.poolNext + 1) % KEPT;
      this.poolPages = this.poolTime = 0;
    } else {
      this.alonePages += pages;
      this.aloneTime += ms;
      if (this.alonePages < SAMPLE_PAGES) return;
      this.alone[this.aloneNext] = Math.max(this.aloneTime / this.alonePages, 1e-9);
      this.aloneNext = (this.aloneNext + 1) % KEPT;
      this.alonePages = this.aloneTime = 0;
    }
  }
}

/** The least of the samples taken (0 when none was). */
function figure(samples: Float64Array): number {
  let least = 0;
  for (const s of samples) if (s > 0 && (least === 0 || s < least)) least = s;
  return least;
}
