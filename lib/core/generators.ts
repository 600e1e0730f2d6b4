import { argTypeError } from '../errors.js';
import { isPromise } from '../store/ram-loader.js';
import type { XbzrleStats } from '../stats.js';
import { DecoderCore, type CorePage, type DecoderOptions } from './decoder.js';
import { EncoderCore, type EncoderOptions, type PageRecord } from './encoder.js';
import type { MemoryPageStore } from '../store/memory-page-store.js';
import { reusedSlabs, type ReusedSlabs } from './reused-slabs.js';

/**
 * What {@link encodeRounds} takes: a page record; a whole round (an array of
 * records, followed by a `sync()`); or `'sync'` / `'final'` to end a round
 * (`'final'` is `sync({ final: true })`).
 */
export type RoundItem = PageRecord | readonly PageRecord[] | 'sync' | 'final';

/**
 * An async generator of the helpers: also returns the statistics when done,
 * and has them as `stats` at any time (handy with `for await` and
 * `pipeline()`, which drop a generator's return value; `pipeline()` not
 * with `encodeRounds`' `reuseChunks`, see {@link EncodeRoundsOption}).
 */
export type WithStats<T> = AsyncGenerator<T, XbzrleStats, undefined> & StatsHolder;

/** Something with live statistics. */
export interface StatsHolder {
  /** The stream's counters, as they are now. */
  readonly stats: XbzrleStats;
}

/** Byte sources of {@link decodeRecords}; record sources of {@link encodeRounds}. */
type Source<S> = AsyncIterable<S> | Iterable<S>;

/** What {@link encodeRounds} takes beyond the encoder's options. */
export interface EncodeRoundsOption {
  /**
   * Reuse the output's memory (default false): each chunk is valid only
   * until the next one is asked for, or the loop ends; its bytes are then
   * overwritten by later records. For a consumer done with each chunk
   * before it takes the next (`for await` with `await handle.write(chunk)`,
   * a hash, a copy: `new Uint8Array(chunk)`; a `Buffer`'s `slice()` is a
   * view). Not for anything that keeps chunks or reads ahead: a stream's
   * `write(chunk)` (a socket, a file stream) keeps the chunk until it is
   * sent, and `pipeline()` and `Readable.from()` take the next chunk before
   * the last one is written, so the output would be silently wrong.
   *
   * A few slabs are written over and over instead of fresh memory for the
   * whole output (a page fault per 4 KiB on first touch): rounds with much
   * output encode faster and steadier (bench/README). The bytes and chunks
   * are those of a run without it.
   */
  reuseChunks?: boolean;
}

/**
 * @internal The encoder generator over a core whose output chunks come from
 * `alloc`; with `reuseChunks`, from reused slabs seen through `view`.
 */
export function encodeRoundsWith(
  source: Source<RoundItem>,
  options: (EncoderOptions & EncodeRoundsOption) | undefined,
  alloc?: (size: number) => Uint8Array,
  view?: (bytes: Uint8Array) => Uint8Array,
): WithStats<Uint8Array> {
  const reuse = options !== null && typeof options === 'object' ? options.reuseChunks : undefined;
  if (reuse !== undefined && typeof reuse !== 'boolean') throw argTypeError('options.reuseChunks', 'a boolean', reuse);
  const slabs = reuse === true ? reusedSlabs(false, view) : null;
  let core: EncoderCore;
  try {
    core = slabs === null ? new EncoderCore(options, alloc) : new EncoderCore(options, slabs.alloc, slabs.release);
  } catch (err) {
    slabs?.dispose();
    throw err;
  }
  const chunks = encodeGen(core, source);
  return withStats(
    slabs === null ? chunks : handingBack(chunks, slabs),
    () => core.currentStats(),
    () => {
      core.dispose(false);
      slabs?.dispose();
    },
  );
}

/**
 * The chunks of `chunks`, each given back to `slabs` when the consumer asks
 * for the next; the slabs freed when the loop ends, however it ends (the
 * encoder's generator is returned first, so its core is done with them).
 */
async function* handingBack(chunks: AsyncGenerator<Uint8Array, XbzrleStats, undefined>, slabs: ReusedSlabs): AsyncGenerator<Uint8Array, XbzrleStats, undefined> {
  try {
    for (;;) {
      const step = await chunks.next();
      if (step.done === true) return step.value;
      yield step.value;
      slabs.done(step.value);
    }
  } finally {
    await chunks.return(undefined as never);
    slabs.dispose();
  }
}

async function* encodeGen(core: EncoderCore, source: Source<RoundItem>): AsyncGenerator<Uint8Array, XbzrleStats, undefined> {
  let delivered = false;
  try {
    for await (const item of items(source)) {
      if (item === 'sync' || item === 'final') {
        core.sync(item === 'final');
        yield* drain(core);
      } else if (Array.isArray(item)) {
        for (const record of item as readonly PageRecord[]) {
          core.feed(record);
          yield* drain(core);
        }
        core.sync(false);
        yield* drain(core);
      } else {
        core.feed(item);
        yield* drain(core);
      }
    }
    core.end();
    yield* drain(core);
    delivered = true;
    return core.currentStats();
  } finally {
    core.dispose(delivered);
  }
}

/** @internal The decoder generator over a core whose page copies come from `alloc`. */
export function decodeRecordsWith<P extends CorePage>(source: Source<Uint8Array>, options: DecoderOptions | undefined, alloc?: (size: number) => Uint8Array): WithStats<P> {
  const core = new DecoderCore(options, alloc);
  // A store the core made itself is nobody else's (the pages handed out are copies): its memory goes
  // back when the generator ends, not when it is collected (a decode after it then reuses that memory
  // instead of faulting in fresh pages).
  const done = options?.store === undefined ? () => (core.store as MemoryPageStore).dispose() : () => undefined;
  return withStats(decodeGen<P>(core, source, done), () => core.stats, () => {
    core.dispose();
    done();
  });
}

async function* decodeGen<P extends CorePage>(core: DecoderCore, source: Source<Uint8Array>, done: () => void): AsyncGenerator<P, XbzrleStats, undefined> {
  try {
    for await (const chunk of items(source)) {
      if (!(chunk instanceof Uint8Array)) throw argTypeError('chunk', 'a Buffer or Uint8Array', chunk);
      core.feed(chunk);
      let used = false;
      try {
        // Inlined (not `yield* drain`): one generator hop per page instead of two.
        for (let out = core.next(); out !== undefined; out = core.next()) {
          if (isPromise(out)) await out;
          else yield out as P;
        }
        used = true;
      } finally {
        if (!used) core.dispose(); // left early: done with the chunk before the source gets it back
      }
    }
    core.end();
    yield* drain<P>(core);
    return core.stats;
  } finally {
    core.dispose();
    done();
  }
}

/** Yields the core's outputs until its input is used up, waiting on its promises. */
async function* drain<T>(core: { next(): unknown }): AsyncGenerator<T, void, undefined> {
  for (let out = core.next(); out !== undefined; out = core.next()) {
    if (isPromise(out)) await out;
    else yield out as T;
  }
}

/**
 * The items of a sync or async iterable, as `for await` gives them (the
 * values of a sync iterable awaited). Leaving early returns the source's
 * iterator without waiting for it (an idle source never holds up the
 * consumer's `break`) and destroys a Node stream source, as `for await` and
 * `pipeline()` do.
 */
async function* items<S>(source: Source<S>): AsyncGenerator<S, void, undefined> {
  const asyncIterator = (source as Partial<AsyncIterable<S>>)[Symbol.asyncIterator];
  const syncIterator = (source as Partial<Iterable<S>>)[Symbol.iterator];
  let iterator: AsyncIterator<S> | Iterator<S>;
  if (typeof asyncIterator === 'function') iterator = asyncIterator.call(source);
  else if (typeof syncIterator === 'function') iterator = syncIterator.call(source);
  else throw argTypeError('source', 'an iterable or async iterable', source);
  const sync = typeof asyncIterator !== 'function';
  let done = false; // the source ended or threw: nothing to return
  try {
    for (;;) {
      let step: IteratorResult<S>;
      let value: S;
      try {
        step = await iterator.next();
        if (step.done === true) {
          done = true;
          return;
        }
        value = sync ? await step.value : step.value;
      } catch (err) {
        done = true;
        throw err;
      }
      yield value;
    }
  } finally {
    if (!done) {
      const stream = source as { destroy?: unknown; readable?: unknown };
      if (typeof stream.destroy === 'function' && typeof stream.readable === 'boolean') (stream.destroy as () => void).call(source);
      if (typeof iterator.return === 'function') {
        Promise.resolve()
          .then(() => iterator.return!())
          .catch(() => undefined);
      }
    }
  }
}

function withStats<T>(gen: AsyncGenerator<T, XbzrleStats, undefined>, stats: () => XbzrleStats, dispose: () => void): WithStats<T> {
  Object.defineProperty(gen, 'stats', { get: stats, enumerable: true });
  // A generator left before its first next() never runs its body, so neither its `finally`: its core
  // (the cache's memory in the kernel, worker threads) is let go here. The first next() takes this
  // hook off again (later calls go straight to the generator).
  let started = false;
  const leftUnstarted = (): void => {
    if (started) return;
    started = true;
    dispose();
  };
  const first = gen.next;
  const done = gen.return;
  const thrown = gen.throw;
  Object.defineProperties(gen, {
    next: {
      value(this: typeof gen, ...args: [] | [undefined]) {
        started = true;
        delete (gen as Partial<typeof gen>).next;
        return first.apply(gen, args);
      },
      configurable: true,
      writable: true,
    },
    return: {
      value(value: XbzrleStats | PromiseLike<XbzrleStats>) {
        leftUnstarted();
        return done.call(gen, value);
      },
      configurable: true,
      writable: true,
    },
    throw: {
      value(err: unknown) {
        leftUnstarted();
        return thrown.call(gen, err);
      },
      configurable: true,
      writable: true,
    },
  });
  return gen as WithStats<T>;
}
