/** A slab handed out: bytes the writer used (-1 while it still writes there) and bytes the sink is done with. */
interface SlabOut {
  slab: Uint8Array;
  used: number;
  done: number;
}

/**
 * Output slabs reused instead of allocated: for a driver that knows when its
 * sink is done with each chunk (a file write that completed). Fresh memory is
 * costly to touch (a page fault per 4 KiB on first use: ~20 µs on some VMs),
 * so a long encode that writes every chunk and then recycles its slab touches
 * a few slabs' worth of memory instead of its whole output.
 *
 * Give {@link SlabPool.alloc} and {@link SlabPool.release} to the record
 * writer (through `EncoderCore`), and call {@link SlabPool.done} with every
 * chunk once the sink has it. A slab comes back when the writer released it
 * and the sink is done with all of its bytes.
 */
export class SlabPool {
  private readonly free: Uint8Array[] = [];
  /** The slabs out, found by range, not by buffer: slabs may share one (the kernel's memory). A few at a time, so a scan is cheap. */
  private readonly slabs: SlabOut[] = [];

  constructor(private readonly make: (size: number) => Uint8Array = (n) => new Uint8Array(n)) {}

  /** The writer's allocator. */
  readonly alloc = (size: number): Uint8Array => {
    if (size === 0) return this.make(0);
    const reused = this.free.pop();
    const slab = reused !== undefined && reused.length >= size ? reused : this.make(size);
    this.slabs.push({ slab, used: -1, done: 0 });
    return slab;
  };

  /** The writer's release hook. */
  readonly release = (slab: Uint8Array, used: number): void => {
    const s = this.find(slab);
    if (s === undefined) return;
    s.used = used;
    this.recycle(s);
  };

  /** The sink is done with `chunk` (a view of a slab from this pool). */
  done(chunk: Uint8Array): void {
    const s = this.find(chunk);
    if (s === undefined) return;
    s.done += chunk.length;
    this.recycle(s);
  }

  /** Slabs held for reuse. */
  get idle(): number {
    return this.free.length;
  }

  /** Slabs the pool keeps: idle ones and those waiting for the writer or the sink. */
  get held(): number {
    return this.free.length + this.slabs.length;
  }

  /** The slab out that `view` is part of. */
  private find(view: Uint8Array): SlabOut | undefined {
    const at = view.byteOffset;
    for (const s of this.slabs) {
      const slab = s.slab;
      if (slab.buffer === view.buffer && at >= slab.byteOffset && at + view.length <= slab.byteOffset + slab.length) return s;
    }
    return undefined;
  }

  private recycle(s: SlabOut): void {
    if (s.used < 0 || s.done < s.used) return;
    this.slabs.splice(this.slabs.indexOf(s), 1);
    this.free.push(s.slab);
  }
}
