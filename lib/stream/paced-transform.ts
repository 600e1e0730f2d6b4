import { Transform, type TransformOptions } from 'readable-stream';

/**
 * A `Transform` whose `_transform` may stop half-way through a large input
 * when the readable side is full, and go on when the consumer reads again.
 * `Transform` alone only applies backpressure between inputs; one record of a
 * gigabyte of pages must not turn into a gigabyte of buffered output.
 */
export class PacedTransform extends Transform {
  private resumeFn: (() => void) | null = null;

  constructor(options: TransformOptions) {
    super(options);
  }

  /**
   * Runs `fn` soon after the next `_read` (when the consumer wants more).
   * Deferred by a tick: `_read` can be called while the buffer still holds the
   * chunk being read, and finishing the input synchronously there would make
   * `Transform` wait for a `_read` that never comes.
   */
  protected resumeOnRead(fn: () => void): void {
    this.resumeFn = fn;
  }

  /** @internal */
  override _read(size: number): void {
    const fn = this.resumeFn;
    if (fn !== null) {
      this.resumeFn = null;
      process.nextTick(fn);
      return;
    }
    super._read(size);
  }
}
