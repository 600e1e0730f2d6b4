import { argValueError } from '../errors.js';

/**
 * Which QEMU wrote a migration stream, as far as the stream tells. A stream
 * carries no version number: a QEMU runs machine types of its own version and
 * older ones, so a versioned machine type (`pc-i440fx-10.0`, `pc-q35-9.2`,
 * `virt-9.1`, `pseries-8.2`, `s390-ccw-virtio-9.0`) gives the oldest QEMU that
 * could have written it, and a few stream features raise that bound
 * (SWITCHOVER_START: 10.0; mapped-ram: 9.0; MULTIFD_FLUSH records: 8.1).
 * The guess is that bound: right for the usual case of a machine type of the
 * running QEMU's own version (`-M pc`, `-M q35` resolve to it).
 */
export interface QemuVersion {
  /** Major version (10 for QEMU 10.0). */
  major: number;
  /** Minor version (0 for QEMU 10.0). */
  minor: number;
  /** `major.minor`, e.g. `'10.0'`. */
  text: string;
  /**
   * How it was found: `'machine-type'` (the configuration section's machine
   * type), `'stream'` (a stream feature only that version or later writes),
   * `'option'` (given by the caller).
   */
  from: 'machine-type' | 'stream' | 'option';
  /** The evidence, in words, e.g. `machine type pc-i440fx-10.0`. */
  evidence: string;
}

/** Versions where what `readQemuMigration` reports or accepts changed. */
export const QEMU_CHANGES = Object.freeze({
  /** `ram.precopy-bytes`, `ram.downtime-bytes`, `ram.postcopy-bytes` appear in `query-migrate`. */
  splitBytes: [7, 0],
  /** MULTIFD_FLUSH records (0x200): written (also without multifd, in 8.1 only) and understood by the loader. */
  multifdFlush: [8, 1],
  /** `ram.transferred` counts every byte of the migration stream (before: the RAM records). */
  transferredWholeStream: [8, 2],
  /** mapped-ram files. */
  mappedRam: [9, 0],
  /** `ram.skipped` is no longer in `query-migrate` (deprecated since 8.1, always 0). */
  noSkipped: [9, 1],
  /** The SWITCHOVER_START command before the `ram` END section (machine types ≥ 10.0). */
  switchoverStart: [10, 0],
} as const satisfies Record<string, readonly [number, number]>);

/** True when `v` is `at` or later. */
export function qemuAtLeast(v: { major: number; minor: number } | null, at: readonly [number, number]): boolean {
  if (v === null) return false;
  return v.major > at[0] || (v.major === at[0] && v.minor >= at[1]);
}

/** Parses `'10.0'`, `'9.2.1'`, `'8.2'` into a version given by the caller; throws a TypeError on anything else. */
export function parseQemuVersion(text: string, name = 'options.qemuVersion'): QemuVersion {
  const m = typeof text === 'string' ? /^(\d{1,3})\.(\d{1,3})(?:\.\d{1,3})?$/.exec(text) : null;
  if (m === null) throw argValueError(name, "must be a QEMU version such as '10.0'", text);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return { major, minor, text: `${major}.${minor}`, from: 'option', evidence: `given as ${text}` };
}

/** A version named by a machine type. */
export interface MachineVersion {
  /** Major version. */
  major: number;
  /** Minor version. */
  minor: number;
}

/** The version a machine type names (`pc-i440fx-10.0` → 10.0), or null for an unversioned or vendor one. */
export function machineTypeVersion(machine: string | null): MachineVersion | null {
  if (machine === null) return null;
  const m = /-(\d{1,3})\.(\d{1,3})$/.exec(machine);
  if (m === null) return null;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  // Versioned machine types start at 1.0 (pc-1.0 … pc-i440fx-10.x, virt-2.6 …).
  if (major < 1 || major > 99) return null;
  return { major, minor };
}

/** Stream features that only some QEMU versions write. */
export interface StreamFeatures {
  /** A SWITCHOVER_START command (11) was seen. */
  switchoverStart: boolean;
  /** The configuration lists the mapped-ram capability. */
  mappedRam: boolean;
  /** A MULTIFD_FLUSH record was seen. */
  multifdFlush: boolean;
}

/**
 * The best guess of the QEMU version that wrote a stream: the machine type's
 * version, raised to what the stream's features need; null when neither says
 * anything.
 */
export function guessQemuVersion(machine: string | null, features: StreamFeatures): QemuVersion | null {
  const fromMachine = machineTypeVersion(machine);
  let best: QemuVersion | null =
    fromMachine === null
      ? null
      : { ...fromMachine, text: `${fromMachine.major}.${fromMachine.minor}`, from: 'machine-type', evidence: `machine type ${machine}` };
  const raise = (at: readonly [number, number], what: string): void => {
    if (qemuAtLeast(best, at)) return;
    const text = `${at[0]}.${at[1]}`;
    const evidence = best === null ? `${what} (written by QEMU ${text} and later)` : `${best.evidence}, but ${what} needs QEMU ${text} or later`;
    best = { major: at[0], minor: at[1], text, from: 'stream', evidence };
  };
  if (features.multifdFlush) raise(QEMU_CHANGES.multifdFlush, 'MULTIFD_FLUSH records');
  if (features.mappedRam) raise(QEMU_CHANGES.mappedRam, 'the mapped-ram capability');
  if (features.switchoverStart) raise(QEMU_CHANGES.switchoverStart, 'a SWITCHOVER_START command');
  return best;
}
