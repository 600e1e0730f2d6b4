import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMigrationReport, renderReportHtml, summaryRows, type MigrationReport } from '../lib/report/index.js';
import { CHROMIUM, launchChromium } from './helpers/chromium.js';
import { loadFixture } from './helpers/qemu-file.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// In-page code is passed as source text: the project's type-check has no DOM library.

/** Draws a PNG in a blank page and counts its distinct colours (and the share of pixels that are not near-white). */
const countColours = (dataUrl: string): string => `(async () => {
  const img = new Image();
  img.src = ${JSON.stringify(dataUrl)};
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.width;
  c.height = img.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  let inked = 0;
  for (let i = 0; i < d.length; i += 4) {
    seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    if (d[i] + d[i + 1] + d[i + 2] < 690) inked++;
  }
  return { colours: seen.size, inked: inked / (d.length / 4), width: c.width, height: c.height };
})()`;

/** What the page shows: counts of the rendered elements. */
const DOM_COUNTS = `({
  rendered: Number(document.body.dataset.rendered),
  canvases: document.querySelectorAll('canvas.map').length,
  declared: Number(document.getElementById('map-blocks').dataset.maps),
  blocks: document.querySelectorAll('#map-blocks .block').length,
  bytesBars: document.querySelectorAll('#chart-bytes g.round').length,
  pagesBars: document.querySelectorAll('#chart-pages g.round').length,
  rateRounds: document.querySelectorAll('#chart-rates g.round').length,
  rateDots: document.querySelectorAll('#chart-rates circle.dot').length,
  buckets: document.querySelectorAll('#chart-deltas g.bucket').length,
  statRows: document.querySelectorAll('#stat tr').length,
  blockRows: document.querySelectorAll('#blocks tbody tr').length,
  cards: document.querySelectorAll('.card').length,
})`;

/** Per frame canvas: pixels not of the "not sent" colour (#e8ecf1). */
const PAINTED = `[...document.querySelectorAll('canvas.map:not(.heat)')].map((cv) => {
  const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] !== 0xe8 || d[i + 1] !== 0xec || d[i + 2] !== 0xf1) n++;
  return n;
})`;

describe.skipIf(CHROMIUM === undefined)('xbzrle report in headless Chromium', () => {
  let dir = '';
  let file = '';
  let data: MigrationReport;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xbzrle-report-browser-'));
    data = await buildMigrationReport(loadFixture('mixed-c8m').mig, { name: 'mixed-c8m.mig' });
    file = join(dir, 'report.html');
    writeFileSync(file, renderReportHtml(data));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders the maps and charts with no error and no network request', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1180, height: 900 } });
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
      });
      page.on('request', (r) => requests.push(r.url()));
      const url = pathToFileURL(file).href;
      await page.goto(url);
      await page.waitForFunction('document.body.dataset.rendered !== undefined', undefined, { timeout: 20_000 });

      // Maps: one canvas per frame, plus an all-rounds map for blocks sent in several rounds; all drawn.
      const blocks = data.blocks.filter((b) => b.frames.length > 0);
      const maps = blocks.reduce((n, b) => n + b.frames.length + (b.frames.length > 1 ? 1 : 0), 0);
      const dom = await page.evaluate(DOM_COUNTS);
      expect(dom).toEqual({
        rendered: maps,
        canvases: maps,
        declared: maps,
        blocks: blocks.length,
        bytesBars: data.rounds.length,
        pagesBars: data.rounds.length,
        rateRounds: data.rounds.length,
        rateDots: data.rounds.reduce((n, r) => n + (r.encodingRate === null ? 0 : 1) + (r.cacheMissRate === null ? 0 : 1), 0),
        buckets: data.deltaSizes.length,
        statRows: summaryRows(data.summary).length,
        blockRows: data.blocks.length,
        cards: 8,
      });

      // Each frame shows exactly its sent cells: pixels not of the "not sent" colour = sent cells × cell area.
      const painted = (await page.evaluate(PAINTED)) as number[];
      const expected = blocks.flatMap((b) =>
        b.frames.map((f) => {
          const cols = b.cells >= 128 ? 128 : Math.min(b.cells, 32);
          const px = Math.max(2, Math.min(16, Math.floor(256 / cols)));
          let sent = 0;
          for (const c of f.codes) if (c !== 0) sent++;
          // Cells past the last one in an incomplete last row are left transparent (0,0,0,0): counted as painted.
          const padding = (Math.ceil(b.cells / cols) * cols - b.cells) * px * px;
          return sent * px * px + padding;
        }),
      );
      expect(painted).toEqual(expected);
      expect(painted.filter((n) => n > 0).length).toBeGreaterThan(20);

      // The tooltip names the block, the page and the round.
      const first = page.locator('canvas.map[data-block="0"][data-frame="0"]');
      await first.scrollIntoViewIfNeeded();
      await first.hover({ position: { x: 1, y: 1 } });
      expect(await page.locator('#tip').textContent()).toMatch(/^pc\.ram · page 0 \(offset 0x0\)\s*round 2: /);

      // A screenshot that is not blank.
      await page.evaluate('window.scrollTo(0, 0)');
      const shot = await page.screenshot();
      const blank = await browser.newPage();
      const colours = (await blank.evaluate(countColours(`data:image/png;base64,${shot.toString('base64')}`))) as { colours: number; inked: number; width: number; height: number };
      expect(colours.colours).toBeGreaterThan(300);
      expect(colours.inked).toBeGreaterThan(0.1);
      expect(colours).toMatchObject({ width: 1180, height: 900 });

      if (process.env['XBZRLE_REPORT_SCREENSHOT'] !== undefined) {
        // The README's picture: the header, the cards, the bytes per round and pc.ram's maps.
        await page.mouse.move(0, 0);
        await page.addStyleTag({ content: '.cols,#rounds details,#deltas,#rounds>p.note,#maps>p.note,.chart-box:has(#chart-pages),.chart-box:has(#chart-rates){display:none!important}' });
        await page.evaluate('window.scrollTo(0, 0)');
        const top = await page.locator('#map-blocks .block').nth(1).boundingBox();
        mkdirSync(join(ROOT, 'docs'), { recursive: true });
        await page.screenshot({ path: join(ROOT, 'docs/report.png'), fullPage: true, clip: { x: 0, y: 0, width: 1180, height: Math.min(2400, Math.round(top!.y - 12)) } });
      }

      expect(errors).toEqual([]);
      expect(requests).toEqual([url]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
