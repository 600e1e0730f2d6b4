import { isPromise } from '../store/ram-loader.js';

/**
 * What {@link pullPair} drives: a pull-based core (the encoder's or the
 * decoder's) seen from a Web Streams pair.
 */
export interface PullCore<I, O> {
  /** Takes one input (throws on a bad one). */
  feed(input: I): void;
  /** The end of input. */
  end(): void;
  /** The next output; a promise to wait for; undefined when the input is used up. */
  next(): O | Promise<unknown> | undefined;
  /** The reader cancelled, the writer aborted or the core failed: release what it holds. */
  stop(): void;
  /** The reader took every output (after the end of input). */
  done(): void;
}

/** A `{ readable, writable }` pair, as `pipeThrough()` takes it. */
export interface StreamPair<I, O> {
  readable: ReadableStream<O>;
  writable: WritableStream<I>;
}

/**
 * A writable side feeding `core` and a readable side pulling from it: the
 * readable's `pull` (called by the stream when its reader wants more) asks
 * the core for the next output, and a write settles once the core has used
 * its input up. Backpressure is the reader's demand; nothing polls.
 */
export function pullPair<I, O>(core: PullCore<I, O>, writableStrategy: QueuingStrategy<I>, readableStrategy: QueuingStrategy<O> & { highWaterMark: number }): StreamPair<I, O> {
  let readableSide!: ReadableStreamDefaultController<O>;
  let writableSide!: WritableStreamDefaultController;
  /** The write (or close) waiting for its input to be used up. */
  let waiting: { resolve: () => void; reject: (err: unknown) => void } | null = null;
  /** The pull waiting for input. */
  let wake: (() => void) | null = null;
  let closing = false;
  let failed = false;
  let failure: unknown;

  /** Ends both sides with `err` (the writable side is left alone when it is the one aborting). */
  const fail = (err: unknown, aborting = false): void => {
    if (failed) return;
    failed = true;
    failure = err;
    core.stop();
    readableSide.error(err);
    if (!aborting) writableSide.error(err);
    waiting?.reject(err);
    waiting = null;
    wake?.();
  };
  /** Settles the write (or close) once its input is used up. */
  const accepted = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      waiting = { resolve, reject };
      wake?.();
    });

  const readable = new ReadableStream<O>(
    {
      start(controller) {
        readableSide = controller;
      },
      async pull(controller) {
        while (!failed) {
          let out;
          try {
            out = core.next();
          } catch (err) {
            fail(err);
            return;
          }
          if (isPromise(out)) {
            await Promise.resolve(out).catch(fail); // an asynchronous page store at work
            continue;
          }
          if (out !== undefined) {
            controller.enqueue(out);
            return; // called again while the reader wants more
          }
          waiting?.resolve(); // the write (or close) whose input this was is done
          waiting = null;
          if (closing) {
            // Closed once the reader took every output (then pulling again with an empty queue).
            if (controller.desiredSize !== readableStrategy.highWaterMark) return;
            controller.close();
            core.done();
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
        }
      },
      cancel(reason) {
        fail(reason);
      },
    },
    readableStrategy,
  );

  const writable = new WritableStream<I>(
    {
      start(controller) {
        writableSide = controller;
        // An abort is heard at once, even while a write waits for a reader that is not reading.
        const signal = (controller as { signal?: AbortSignal }).signal; // not in every runtime's (or lib's) streams
        signal?.addEventListener('abort', () => fail(signal.reason, true));
      },
      write(input) {
        if (failed) throw failure;
        try {
          core.feed(input);
        } catch (err) {
          fail(err);
          throw err;
        }
        return accepted();
      },
      close() {
        if (failed) throw failure;
        core.end();
        closing = true;
        return accepted();
      },
      abort(reason) {
        fail(reason, true);
      },
    },
    writableStrategy,
  );
  return { readable, writable };
}
