import type { TransformCallback } from 'node:stream';
import { Transform, type TransformOptions } from 'readable-stream';
import { isPromise } from '../store/ram-loader.js';

/**
 * A `Transform` driving a pull-based core: after each input (and at the end)
 * {@link PacedTransform.pump} asks the core for outputs and pushes them,
 * stopping half-way through a large input when the readable side is full and
 * going on when the consumer reads again. `Transform` alone only applies
 * backpressure between inputs; one record of a gigabyte of pages must not
 * turn into a gigabyte of buffered output. The one processing loop of both
 * Node streams (as zlib's streams share one).
 *
 * While paused, the input's callback is held here: if the stream is
 * destroyed meanwhile, it is called with the error, so the write (and every
 * write queued behind it) settles instead of waiting for ever.
 */
export class PacedTransform extends Transform {
  private resumeFn: (() => void) | null = null;
  private heldCallback: TransformCallback | null = null;
  private destroyError: Error | null = null;

  constructor(options: TransformOptions) {
    super(options);
  }

  /**
   * Pushes what `next` returns (an output; a promise to wait for; undefined
   * when the input is used up, then `callback` is called), pausing while the
   * reader is full. Errors thrown by `next` go to `callback`.
   */
  protected pump(next: () => unknown, callback: TransformCallback): void {
    for (;;) {
      let out: unknown;
      try {
        out = next();
      } catch (err) {
        callback(err as Error);
        return;
      }
      if (out === undefined) {
        callback();
        return;
      }
      if (isPromise(out)) {
        this.holdUntil(out, () => this.pump(next, callback), callback);
        return;
      }
      // Full reader, or destroyed by a synchronous 'data' handler during this push: stop here.
      if (!this.push(out) || this.destroyed) {
        this.resumeOnRead(() => this.pump(next, callback), callback);
        return;
      }
    }
  }

  /**
   * Runs `fn` soon after the next `_read` (when the consumer wants more);
   * `callback` is the paused input's, called with an error instead if the
   * stream is destroyed first. Deferred by a tick: `_read` can be called
   * while the buffer still holds the chunk being read, and finishing the
   * input synchronously there would make `Transform` wait for a `_read` that
   * never comes.
   */
  private resumeOnRead(fn: () => void, callback: TransformCallback): void {
    // Destroyed already (by a synchronous 'data' handler, say): nothing will resume it.
    if (this.destroyed) {
      callback(this.destroyError ?? destroyedError());
      return;
    }
    this.resumeFn = fn;
    this.heldCallback = callback;
  }

  /**
   * Runs `next` when `promise` resolves (or calls `callback` with its
   * rejection), holding `callback` meanwhile like {@link resumeOnRead}: if the
   * stream is destroyed while waiting (on an async page store, say), the
   * input settles with the error at once and nothing runs after the promise.
   */
  private holdUntil(promise: PromiseLike<unknown>, next: () => void, callback: TransformCallback): void {
    if (this.destroyed) {
      callback(this.destroyError ?? destroyedError());
      return;
    }
    this.heldCallback = callback;
    const settle = (err: Error | null): void => {
      if (this.destroyed || this.heldCallback !== callback) return; // _destroy settled it
      this.heldCallback = null;
      if (err === null) next();
      else callback(err);
    };
    promise.then(
      () => settle(null),
      (err: unknown) => settle(err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** @internal */
  override _read(size: number): void {
    const fn = this.resumeFn;
    if (fn !== null) {
      this.resumeFn = null;
      process.nextTick(() => {
        if (this.destroyed) return; // _destroy settled the held callback
        this.heldCallback = null;
        fn();
      });
      return;
    }
    super._read(size);
  }

  /** @internal */
  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    const held = this.heldCallback;
    this.heldCallback = null;
    this.resumeFn = null;
    this.destroyError = err;
    if (held !== null) held(err ?? destroyedError());
    super._destroy(err, callback);
  }
}

function destroyedError(): Error {
  const err = new Error('Cannot call write after a stream was destroyed');
  (err as Error & { code: string }).code = 'ERR_STREAM_DESTROYED';
  return err;
}
