/**
 * Headless Chromium for the browser tests (`xbzrle/web` on a page, the HTML
 * report): the system's Chromium (Debian's package, which `.ci/run` installs),
 * driven by playwright-core. Tests skip when there is none.
 */
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/** The system's Chromium, or undefined when this machine has none. */
export const CHROMIUM: string | undefined = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

/**
 * Launches {@link CHROMIUM} headless, sandbox, GPU and background networking
 * off (nothing but the test's own requests), with `args` added.
 */
export async function launchChromium(args: readonly string[] = []): Promise<Browser> {
  if (CHROMIUM === undefined) throw new Error('no Chromium on this machine (skip the test with CHROMIUM === undefined)');
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
}
