/**
 * Chooses, group of pages by group, between two ways of doing the same work
 * that give the same result (the encoder's worker pool, or the calling
 * thread alone), by the time per page each took lately: the pool is tried
 * first, then the thread alone once, then the faster one is kept, the other
 * tried again every {@link RETRY} groups. On a machine whose cores are busy
 * (or whose memory bandwidth one thread already uses up), more threads are
 * then never much slower than one.
 */

/** Groups between two tries of the path not chosen. */
const RETRY = 16;
/** Weight of the newest sample in a path's running figure. */
const WEIGHT = 0.3;

export class PathTuner {
  /** Running time per page (ms), 0 until measured. */
  private poolMs = 0;
  private aloneMs = 0;
  private groups = 0;

  /** True when the next group should go to the pool. */
  usePool(): boolean {
    const g = ++this.groups;
    if (this.poolMs === 0) return true;
    if (this.aloneMs === 0) return false;
    const poolFaster = this.poolMs <= this.aloneMs;
    return g % RETRY === 0 ? !poolFaster : poolFaster;
  }

  /**
   * Forgets what was measured: the next group goes to the pool, the one after
   * it alone, as at the start. For a new round, whose pages may cost nothing
   * like the last round's (a first round is all misses and page faults).
   */
  reset(): void {
    this.poolMs = 0;
    this.aloneMs = 0;
    this.groups = 0;
  }

  /** Records `ms` spent on `pages` pages, on the pool or alone. */
  record(pool: boolean, pages: number, ms: number): void {
    if (pages <= 0 || !(ms >= 0)) return;
    const perPage = Math.max(ms / pages, 1e-9);
    if (pool) this.poolMs = this.poolMs === 0 ? perPage : this.poolMs + WEIGHT * (perPage - this.poolMs);
    else this.aloneMs = this.aloneMs === 0 ? perPage : this.aloneMs + WEIGHT * (perPage - this.aloneMs);
  }
}
