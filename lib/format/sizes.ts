/** Counts and byte sizes as the messages and reports print them. */

/** `count` and the noun, plural when count is not 1: `1 round`, `3 rounds`. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}

/** Bytes with three significant digits, as `xbzrle stat` prints them: `512 B`, `4.00 KiB`, `35.2 MiB`, `112 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** A size for messages, exact where it can be: `16 MiB`, `4 KiB`, `1.5 GiB`, or `N bytes`. */
export function formatSize(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} bytes`;
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const s = Number.isInteger(v) ? String(v) : v.toFixed(1);
  return `${s} ${units[u]!}`;
}
