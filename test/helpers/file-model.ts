/**
 * Files in memory as a plain file behaves: a write past the end grows the
 * file (zeros between), a truncate cuts it or grows it with zeros. The
 * reference the FilePageStore properties compare the store's files with.
 */
export class FileModel {
  readonly files: Uint8Array[];

  /** `initial[f]`: file f's bytes to start with (copied), or empty. */
  constructor(count: number, initial: readonly (Uint8Array | null | undefined)[] = []) {
    this.files = Array.from({ length: count }, (_, f) => initial[f]?.slice() ?? new Uint8Array(0));
  }

  write(f: number, at: number, data: Uint8Array): void {
    if (at + data.length > this.files[f]!.length) this.truncate(f, at + data.length);
    this.files[f]!.set(data, at);
  }

  read(f: number, at: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    out.set(this.files[f]!.subarray(at, at + len));
    return out;
  }

  truncate(f: number, length: number): void {
    const resized = new Uint8Array(length);
    resized.set(this.files[f]!.subarray(0, length));
    this.files[f] = resized;
  }
}
