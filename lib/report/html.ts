import type { MigrationReport } from './build.js';
import { CELL_KIND, CELL_KIND_NAMES, cellLevel } from './cells.js';
import { mergeRounds, type RoundStats } from './collect.js';
import { plural } from '../format/sizes.js';
import { formatSize, summaryRows } from './summary.js';

/** Options of {@link renderReportHtml}. */
export interface RenderReportOptions {
  /** Page title. Default: "XBZRLE report: <file>". */
  title?: string;
  /** Most bars in the per-round charts (successive rounds are grouped beyond it). Default 240. */
  maxBars?: number;
}

/** Kind colours, by {@link CELL_KIND} value (NONE first). */
const KIND_COLORS = ['#e8ecf1', '#8ec5e6', '#2f9e55', '#7b73c0', '#f59a3c', '#d93b2b', '#b5562a'];
/** Light and dark ends of the XBZRLE ramp (small → large deltas). */
const XB_LIGHT = [0xc9, 0xeb, 0xc0];
const XB_DARK = [0x0b, 0x5a, 0x2a];
/** The rounds-sent heat ramp, low to high. */
const HEAT = [
  [0xff, 0xf3, 0xb8],
  [0xfd, 0xb8, 0x63],
  [0xf0, 0x6b, 0x3c],
  [0xc2, 0x25, 0x5c],
  [0x6a, 0x0d, 0x83],
  [0x24, 0x04, 0x4b],
];
/** Series of the per-round charts: kind index, label. META stands for MEM_SIZE and EOS bytes. */
const META = 0;

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function hex(rgb: readonly number[]): string {
  return '#' + rgb.map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
}

function rgbOf(color: string): number[] {
  return [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
}

function mix(a: readonly number[], b: readonly number[], t: number): number[] {
  return a.map((v, i) => v + (b[i]! - v) * t);
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/** RGB of every cell code (256 × 3 bytes). */
function cellPalette(pageSize: number): Uint8Array {
  const lut = new Uint8Array(256 * 3);
  const none = rgbOf(KIND_COLORS[0]!);
  const lo = cellLevel(1);
  const hi = cellLevel(pageSize);
  for (let code = 0; code < 256; code++) {
    const kind = code >> 5;
    const level = code & 31;
    let rgb = none;
    if (kind === CELL_KIND.XBZRLE) {
      rgb = mix(XB_LIGHT, XB_DARK, 0.12 + 0.88 * clamp01((level - lo) / (hi - lo)));
    } else if (kind > 0 && kind < KIND_COLORS.length) {
      // Paler when fewer of the cell's pages were sent: full = one record per page.
      const full = cellLevel(kind === CELL_KIND.ZERO ? 10 : pageSize + 9);
      const low = cellLevel((kind === CELL_KIND.ZERO ? 10 : pageSize + 9) / 256);
      rgb = mix(none, rgbOf(KIND_COLORS[kind]!), 0.35 + 0.65 * clamp01((level - low) / (full - low)));
    }
    lut.set(rgb.map((v) => Math.round(v)), code * 3);
  }
  return lut;
}

function heatColor(t: number): number[] {
  const x = clamp01(t) * (HEAT.length - 1);
  const i = Math.min(HEAT.length - 2, Math.floor(x));
  return mix(HEAT[i]!, HEAT[i + 1]!, x - i);
}

function heatPalette(): Uint8Array {
  const lut = new Uint8Array(256 * 3);
  lut.set(rgbOf(KIND_COLORS[0]!), 0);
  for (let i = 1; i < 256; i++) lut.set(heatColor((i - 1) / 254).map((v) => Math.round(v)), i * 3);
  return lut;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** A "nice" axis: max rounded up to 1, 2 or 5 × 10^k, and its tick step. */
function niceAxis(max: number, ticks = 4): { max: number; step: number } {
  if (!(max > ticks)) return { max: ticks, step: 1 }; // counts and bytes: whole units
  const raw = max / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function shortNumber(n: number): string {
  if (n >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(2)}`;
}

function shortBytes(n: number): string {
  if (n === 0) return '0';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${+n.toFixed(n >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

interface Series {
  name: string;
  color: string;
  values: number[];
}

const W = 1080;

/** A stacked bar chart (SVG). */
function stackedBars(o: { id: string; title: string; yTitle: string; labels: string[]; series: Series[]; yFormat: (n: number) => string; tips: string[]; height?: number }): string {
  const H = o.height ?? 230;
  const m = { l: 74, r: 16, t: 12, b: 34 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const n = o.labels.length;
  const totals = o.labels.map((_, i) => o.series.reduce((s, se) => s + (se.values[i] ?? 0), 0));
  const axis = niceAxis(Math.max(0, ...totals));
  const y = (v: number): number => m.t + ph - (v / axis.max) * ph;
  const slot = pw / Math.max(1, n);
  const bw = Math.max(1, slot * 0.78);
  const parts: string[] = [];
  parts.push(`<svg class="chart" id="${o.id}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.title)}">`);
  for (let v = 0; v <= axis.max + 1e-9; v += axis.step) {
    parts.push(`<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text class="tick" x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${esc(o.yFormat(v))}</text>`);
  }
  parts.push(`<text class="axis-title" transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yTitle)}</text>`);
  const every = Math.max(1, Math.ceil(n / 24));
  for (let i = 0; i < n; i++) {
    const x = m.l + i * slot + (slot - bw) / 2;
    let acc = 0;
    const rects: string[] = [];
    for (const se of o.series) {
      const v = se.values[i] ?? 0;
      if (v <= 0) continue;
      const y0 = y(acc);
      const y1 = y(acc + v);
      rects.push(`<rect class="bar" x="${x.toFixed(1)}" y="${y1.toFixed(2)}" width="${bw.toFixed(1)}" height="${Math.max(0.5, y0 - y1).toFixed(2)}" fill="${se.color}"/>`);
      acc += v;
    }
    parts.push(`<g class="round" data-i="${i}"><title>${esc(o.tips[i] ?? '')}</title><rect class="hit" x="${(m.l + i * slot).toFixed(1)}" y="${m.t}" width="${slot.toFixed(1)}" height="${ph}" fill="transparent"/>${rects.join('')}</g>`);
    if (i % every === 0) parts.push(`<text class="tick" x="${(m.l + i * slot + slot / 2).toFixed(1)}" y="${H - m.b + 15}" text-anchor="middle">${esc(o.labels[i]!)}</text>`);
  }
  parts.push(`<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}"/>`);
  parts.push(`<text class="axis-title" x="${m.l + pw / 2}" y="${H - 3}" text-anchor="middle">round</text>`);
  parts.push('</svg>');
  return `<figure class="chart-box"><figcaption>${esc(o.title)}</figcaption>${legend(o.series.map((s) => [s.color, s.name]))}${parts.join('')}</figure>`;
}

function legend(items: [string, string][]): string {
  return `<div class="legend">${items.map(([c, t]) => `<span><i style="background:${c}"></i>${esc(t)}</span>`).join('')}</div>`;
}

/** Encoding rate (left axis) and cache miss rate (right axis, %) per round (SVG lines). */
function rateChart(labels: string[], enc: (number | null)[], miss: (number | null)[], missName: string, tips: string[]): string {
  const H = 230;
  const m = { l: 74, r: 64, t: 12, b: 34 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const n = labels.length;
  // Encoding rates run from about 1 (overflows) to hundreds (tiny deltas): a log axis.
  const known = enc.filter((v): v is number => v !== null && v > 0);
  const lo = Math.min(1, ...known);
  const decades = { lo: Math.floor(Math.log10(lo)), hi: Math.max(1, Math.ceil(Math.log10(Math.max(10, ...known)))) };
  const slot = pw / Math.max(1, n);
  const x = (i: number): number => m.l + i * slot + slot / 2;
  const ye = (v: number): number => m.t + ph - ((Math.log10(Math.max(v, 10 ** decades.lo)) - decades.lo) / (decades.hi - decades.lo)) * ph;
  const ym = (v: number): number => m.t + ph - v * ph;
  const parts: string[] = [`<svg class="chart" id="chart-rates" viewBox="0 0 ${W} ${H}" role="img" aria-label="encoding rate and cache miss rate per round">`];
  for (let d = decades.lo; d <= decades.hi; d++) {
    for (const k of d === decades.hi ? [1] : [1, 2, 5]) {
      const v = k * 10 ** d;
      parts.push(`<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${ye(v).toFixed(1)}" y2="${ye(v).toFixed(1)}"/><text class="tick" x="${m.l - 6}" y="${(ye(v) + 4).toFixed(1)}" text-anchor="end">${esc(shortNumber(v))}</text>`);
    }
  }
  for (let p = 0; p <= 100; p += 25) parts.push(`<text class="tick miss" x="${W - m.r + 6}" y="${(ym(p / 100) + 4).toFixed(1)}">${p}%</text>`);
  parts.push(`<text class="axis-title enc" transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">encoding rate (log)</text>`);
  parts.push(`<text class="axis-title miss" transform="translate(${W - 10} ${m.t + ph / 2}) rotate(90)" text-anchor="middle">${esc(missName)}</text>`);
  const line = (vals: (number | null)[], f: (v: number) => number): string => {
    let d = '';
    let pen = false;
    vals.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)} ${f(v).toFixed(1)}`;
      pen = true;
    });
    return d;
  };
  parts.push(`<path class="line enc" d="${line(enc, ye)}"/><path class="line miss" d="${line(miss, ym)}"/>`);
  const every = Math.max(1, Math.ceil(n / 24));
  for (let i = 0; i < n; i++) {
    const e = enc[i];
    const mr = miss[i];
    parts.push(`<g class="round"><title>${esc(tips[i] ?? '')}</title><rect class="hit" x="${(m.l + i * slot).toFixed(1)}" y="${m.t}" width="${slot.toFixed(1)}" height="${ph}" fill="transparent"/>`);
    if (e !== null && e !== undefined) parts.push(`<circle class="dot enc" cx="${x(i).toFixed(1)}" cy="${ye(e).toFixed(1)}" r="3"/>`);
    if (mr !== null && mr !== undefined) parts.push(`<circle class="dot miss" cx="${x(i).toFixed(1)}" cy="${ym(mr).toFixed(1)}" r="3"/>`);
    parts.push('</g>');
    if (i % every === 0) parts.push(`<text class="tick" x="${x(i).toFixed(1)}" y="${H - m.b + 15}" text-anchor="middle">${esc(labels[i]!)}</text>`);
  }
  parts.push(`<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}"/>`);
  parts.push(`<text class="axis-title" x="${m.l + pw / 2}" y="${H - 3}" text-anchor="middle">round</text></svg>`);
  return `<figure class="chart-box"><figcaption>Encoding rate and cache miss rate per round</figcaption>${legend([
    ['#2f9e55', 'encoding rate: page bytes per XBZRLE byte (left axis, log scale; rounds with XBZRLE pages)'],
    ['#f59a3c', `${missName} (right axis)`],
  ])}${parts.join('')}</figure>`;
}

/** The delta size histogram (SVG bars). */
function histogram(buckets: { from: number; to: number; count: number }[]): string {
  const H = 230;
  const m = { l: 74, r: 16, t: 16, b: 40 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const axis = niceAxis(Math.max(0, ...buckets.map((b) => b.count)));
  const slot = pw / Math.max(1, buckets.length);
  const y = (v: number): number => m.t + ph - (v / axis.max) * ph;
  const parts: string[] = [`<svg class="chart" id="chart-deltas" viewBox="0 0 ${W} ${H}" role="img" aria-label="XBZRLE delta size histogram">`];
  for (let v = 0; v <= axis.max + 1e-9; v += axis.step) {
    parts.push(`<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text class="tick" x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${esc(shortNumber(v))}</text>`);
  }
  parts.push(`<text class="axis-title" transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">XBZRLE records</text>`);
  const total = buckets.reduce((s, b) => s + b.count, 0);
  buckets.forEach((b, i) => {
    const x = m.l + i * slot + slot * 0.12;
    const label = `${shortBytes(b.from)}–${shortBytes(b.to)}`;
    const t = i / Math.max(1, buckets.length - 1);
    parts.push(`<g class="bucket"><title>${esc(`${b.from}–${b.to} bytes: ${b.count} deltas (${total > 0 ? ((100 * b.count) / total).toFixed(1) : '0'}%)`)}</title>`);
    parts.push(`<rect class="bar" x="${x.toFixed(1)}" y="${y(b.count).toFixed(1)}" width="${(slot * 0.76).toFixed(1)}" height="${(m.t + ph - y(b.count)).toFixed(1)}" fill="${hex(mix(XB_LIGHT, XB_DARK, 0.25 + 0.75 * t))}"/>`);
    if (b.count > 0) parts.push(`<text class="value" x="${(x + slot * 0.38).toFixed(1)}" y="${(y(b.count) - 4).toFixed(1)}" text-anchor="middle">${b.count}</text>`);
    parts.push(`</g><text class="tick" x="${(x + slot * 0.38).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${esc(label)}</text>`);
  });
  parts.push(`<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}"/>`);
  parts.push(`<text class="axis-title" x="${m.l + pw / 2}" y="${H - 4}" text-anchor="middle">delta size (payload bytes)</text></svg>`);
  return `<figure class="chart-box"><figcaption>XBZRLE delta sizes</figcaption>${parts.join('')}</figure>`;
}

/** Rounds grouped so that at most `max` remain (sums; rates recomputed). */
function groupRounds(rounds: RoundStats[], max: number, pageSize: number): { label: string; r: RoundStats }[] {
  const k = Math.max(1, Math.ceil(rounds.length / max));
  const out: { label: string; r: RoundStats }[] = [];
  for (let i = 0; i < rounds.length; i += k) {
    const part = rounds.slice(i, i + k);
    const r = part.slice(1).reduce((a, b) => mergeRounds(a, b, pageSize), part[0]!);
    out.push({ label: r.round === r.lastRound ? String(r.round) : `${r.round}–${r.lastRound}`, r });
  }
  return out;
}

const CSS = `
:root{--bg:#f4f6f9;--card:#fff;--ink:#1d2733;--muted:#5b6878;--line:#dde3ea;--accent:#2f6fdd}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#18222f;color:#fff;padding:18px 28px 16px}
header h1{margin:0;font-size:21px;font-weight:650;letter-spacing:.2px}
header .sub{color:#b9c6d6;margin-top:3px;font-size:13.5px}
main{max-width:1140px;margin:0 auto;padding:18px 20px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px 18px;margin:16px 0;box-shadow:0 1px 2px rgba(20,30,45,.04)}
h2{font-size:17px;margin:0 0 10px;font-weight:650}
h3{font-size:14.5px;margin:16px 0 6px;font-weight:650}
h3 .meta{font-weight:400;color:var(--muted);margin-left:8px;font-size:13px}
p.note{color:var(--muted);margin:6px 0 10px;font-size:13px;max-width:980px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(122px,1fr));gap:10px;margin:4px 0 14px}
.card{border:1px solid var(--line);border-radius:8px;padding:9px 12px;background:#fbfcfd}
.card .k{color:var(--muted);font-size:11.5px;text-transform:uppercase;letter-spacing:.3px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card .v{font-size:18px;font-weight:650;margin-top:2px}
.card .d{color:var(--muted);font-size:12px}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:22px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th{width:120px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
figure{margin:0}
.chart-box{margin:8px 0 18px}
.chart-box figcaption{font-weight:650;margin-bottom:2px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#e6eaef;stroke-width:1}
svg .axis{stroke:#8794a3;stroke-width:1}
svg .tick{fill:#5b6878;font-size:11.5px}
svg .value{fill:#1d2733;font-size:11px}
svg .axis-title{fill:#3b4756;font-size:12px}
svg .round:hover .hit{fill:rgba(47,111,221,.08)}
svg .line{fill:none;stroke-width:2}
svg .line.enc,svg .dot.enc{stroke:#2f9e55}
svg .dot{fill:#fff;stroke-width:2}
svg .line.miss,svg .dot.miss{stroke:#f59a3c}
svg .tick.miss,svg .axis-title.miss{fill:#b86510}
svg .axis-title.enc{fill:#1f7a3f}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0 6px;font-size:12.5px;color:#3b4756}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{display:inline-block;width:13px;height:13px;border-radius:3px;border:1px solid rgba(0,0,0,.12)}
.legend .ramp{width:90px;height:13px;border-radius:3px;border:1px solid rgba(0,0,0,.12)}
.frames{display:grid;grid-template-columns:repeat(auto-fill,minmax(245px,1fr));gap:10px 12px;margin-top:8px}
.frame{border:1px solid var(--line);border-radius:6px;padding:6px 6px 4px;background:#fbfcfd}
.frame figcaption{font-size:12px;color:var(--muted);margin-top:3px;display:flex;justify-content:space-between}
canvas.map{display:block;image-rendering:pixelated;max-width:100%;border-radius:2px}
.frame canvas.map.wide{width:100%;height:auto}
.overview{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}
.block{border-top:1px solid var(--line);padding-top:6px;margin-top:14px}
.block:first-of-type{border-top:0;margin-top:0}
details summary{cursor:pointer;color:var(--accent);margin:4px 0}
.tip{position:fixed;pointer-events:none;background:#18222f;color:#fff;font-size:12px;padding:6px 8px;border-radius:6px;max-width:360px;display:none;z-index:10;box-shadow:0 2px 8px rgba(0,0,0,.25)}
footer{color:var(--muted);font-size:12px;text-align:center;margin:10px 0 30px}
@media (max-width:800px){.cols{grid-template-columns:1fr}}
`;

/** The browser side: draws the page maps from the embedded data and shows a tooltip. No network, no globals kept. */
const SCRIPT = `
(function(){
  var data = JSON.parse(document.getElementById('report-data').textContent);
  function bytes(b64){var s=atob(b64),a=new Uint8Array(s.length);for(var i=0;i<s.length;i++)a[i]=s.charCodeAt(i);return a;}
  var cellLut = bytes(data.cellPalette), heatLut = bytes(data.heatPalette);
  var drawn = 0;
  function draw(canvas, values, lut, cols, px, count){
    var rows = Math.ceil(count / cols);
    canvas.width = cols * px; canvas.height = rows * px;
    var ctx = canvas.getContext('2d');
    var img = ctx.createImageData(canvas.width, canvas.height), d = img.data, w = canvas.width;
    for (var c = 0; c < count; c++) {
      var v = values[c], x0 = (c % cols) * px, y0 = Math.floor(c / cols) * px, r = lut[v*3], g = lut[v*3+1], b = lut[v*3+2];
      for (var y = y0; y < y0 + px; y++) for (var x = x0; x < x0 + px; x++) { var o = (y*w + x)*4; d[o]=r; d[o+1]=g; d[o+2]=b; d[o+3]=255; }
    }
    ctx.putImageData(img, 0, 0);
    drawn++;
  }
  var maps = document.querySelectorAll('canvas.map');
  var decoded = {};
  function block(i){ if (!decoded[i]) { var b = data.blocks[i]; var h = bytes(b.heat); decoded[i] = { frames: b.frames.map(function(f){return bytes(f.codes);}), heat: new Uint16Array(h.buffer, 0, h.length >> 1) }; } return decoded[i]; }
  for (var i = 0; i < maps.length; i++) {
    var cv = maps[i], bi = +cv.dataset.block, b = data.blocks[bi], blk = block(bi);
    if (cv.dataset.frame === 'heat') {
      var levels = new Uint8Array(b.cells);
      for (var c = 0; c < b.cells; c++) levels[c] = blk.heat[c] === 0 ? 0 : 1 + Math.round(254 * (blk.heat[c] - 1) / Math.max(1, +cv.dataset.max - 1));
      draw(cv, levels, heatLut, b.cols, b.heatPx, b.cells);
    } else {
      draw(cv, blk.frames[+cv.dataset.frame], cellLut, b.cols, b.px, b.cells);
    }
  }
  var tip = document.getElementById('tip');
  function hexa(n){return '0x' + n.toString(16);}
  function sizeOf(n){var u=['B','KiB','MiB','GiB','TiB'],i=0;while(n>=1024&&i<4){n/=1024;i++;}return (i===0?n.toFixed(n<10?1:0):n.toFixed(n>=100?0:n>=10?1:2))+' '+u[i];}
  document.addEventListener('mousemove', function(e){
    var cv = e.target;
    if (!(cv instanceof HTMLCanvasElement) || !cv.classList.contains('map')) { tip.style.display = 'none'; return; }
    var bi = +cv.dataset.block, b = data.blocks[bi], blk = block(bi), heat = cv.dataset.frame === 'heat';
    var rect = cv.getBoundingClientRect(), px = (heat ? b.heatPx : b.px) * rect.width / cv.width;
    var col = Math.floor((e.clientX - rect.left) / px), row = Math.floor((e.clientY - rect.top) / px), c = row * b.cols + col;
    if (col < 0 || col >= b.cols || c < 0 || c >= b.cells) { tip.style.display = 'none'; return; }
    var first = c * b.ppc, last = Math.min(b.pages, first + b.ppc) - 1;
    var text = b.name + ' \\u00b7 ' + (b.ppc === 1 ? 'page ' + first : 'pages ' + first + '\\u2013' + last) + ' (offset ' + hexa(first * data.pageSize) + ')\\n';
    if (heat) text += 'sent in ' + blk.heat[c] + ' of ' + data.rounds + ' rounds';
    else {
      var code = blk.frames[+cv.dataset.frame][c], kind = code >> 5;
      text += cv.dataset.label + ': ' + data.kinds[kind];
      if (kind) text += ', \\u2248 ' + sizeOf(Math.pow(2, -8 + ((code & 31) - 1) * 24 / 30)) + ' per page';
    }
    tip.textContent = text; tip.style.whiteSpace = 'pre-line'; tip.style.display = 'block';
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 370) + 'px'; tip.style.top = (e.clientY + 14) + 'px';
  });
  document.body.dataset.rendered = String(drawn);
})();
`;

/**
 * Renders a {@link MigrationReport} as one self-contained HTML document:
 * inline CSS, SVG charts, page maps drawn on canvases by a small inline
 * script from data embedded in the page; a Content-Security-Policy that
 * forbids any network access. Every string from the stream is escaped.
 */
export function renderReportHtml(report: MigrationReport, options: RenderReportOptions = {}): string {
  const s = report.summary;
  const ps = s.pageSize;
  const r = s.records;
  const inf = report.inferred;
  const classified = report.classification !== 'none';
  const title = options.title ?? `XBZRLE report: ${s.file}`;
  const rounds = report.rounds;
  const roundCount = rounds.length === 0 ? 0 : rounds[rounds.length - 1]!.lastRound;

  // --- header and summary ---
  const pageRecords = rounds.reduce((n, x) => n + x.records.PAGE, 0);
  const cards: [string, string, string][] = [
    ['RAM records', formatSize(s.ramBytes), `${s.ramBytes} bytes`],
    ['pages carried', formatSize(s.pageBytes), `ratio ${s.ratio.toFixed(2)}:1`],
    ['rounds', String(roundCount), 'EOS-delimited'],
    ['XBZRLE', String(r.XBZRLE), r.XBZRLE > 0 ? `${(s['xbzrle-cache'].bytes / r.XBZRLE).toFixed(1)} B per delta` : 'no deltas'],
    ['ZERO', String(r.ZERO), `${formatSize(r.ZERO * ps)} of pages`],
    ['PAGE', String(pageRecords), `${inf.newPages} ${report.mappedRam ? 'present (mapped-ram)' : 'first sends'}`],
    classified ? ['cache misses', String(inf.cacheMiss), 'inferred (delta would fit)'] : ['resent pages', String(inf.resent), 'cache miss or overflow'],
    classified ? ['overflows', String(inf.overflow), 'inferred (delta > page)'] : ['blocks', String(report.blocks.length), 'RAM blocks'],
  ];
  const rows = summaryRows(s)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join('');
  const blockRows = report.blocks
    .map((b) => {
      const sent = b.roundsSent.reduce((m, v) => Math.max(m, v), 0);
      return `<tr><td class="mono">${esc(b.id)}</td><td class="num">${esc(formatSize(b.length))}${b.declared ? '' : '*'}</td><td class="num">${b.records}</td><td class="num">${b.frames.reduce((n, f) => n + f.rounds, 0)}</td><td class="num">${sent}</td></tr>`;
    })
    .join('');

  // --- per-round charts ---
  const groups = groupRounds(rounds, options.maxBars ?? 240, ps);
  const labels = groups.map((g) => g.label);
  const kindSeries = (pick: (r: RoundStats, kind: number) => number, kinds: number[], names: string[]): Series[] =>
    kinds
      .map((k, i) => ({ name: names[i]!, color: k === META ? '#a9b3bf' : KIND_COLORS[k]!, values: groups.map((g) => pick(g.r, k)) }))
      .filter((se) => se.values.some((v) => v > 0));
  const kindsShown = [CELL_KIND.ZERO, CELL_KIND.XBZRLE, CELL_KIND.PAGE, CELL_KIND.MISS, CELL_KIND.OVERFLOW, CELL_KIND.RESENT];
  const kindNames = ['ZERO', 'XBZRLE', 'PAGE (first send)', 'PAGE (cache miss)', 'PAGE (overflow)', 'PAGE (resent)'];
  const tips = groups.map(({ label, r: g }) =>
    [
      `round ${label}: ${formatSize(g.bytes)} (${g.bytes} bytes)`,
      `PAGE ${g.records.PAGE} (first ${g.newPages}${classified ? `, miss ${g.cacheMiss}, overflow ${g.overflow}` : ''}${g.resent > 0 ? `, resent ${g.resent}` : ''})`,
      `ZERO ${g.records.ZERO}  XBZRLE ${g.records.XBZRLE} (${g.xbzrleBytes} bytes)`,
      `encoding rate ${g.encodingRate === null ? '–' : g.encodingRate.toFixed(2)}, miss rate ${g.cacheMissRate === null ? '–' : `${(100 * g.cacheMissRate).toFixed(1)}%`}`,
    ].join('\n'),
  );
  const bytesChart = stackedBars({
    id: 'chart-bytes',
    title: 'Bytes sent per round, by record kind',
    yTitle: 'bytes',
    labels,
    series: kindSeries((g, k) => g.bytesByKind[k] ?? 0, [...kindsShown, META], [...kindNames, 'MEM_SIZE + EOS']),
    yFormat: shortBytes,
    tips,
  });
  const pagesChart = stackedBars({
    id: 'chart-pages',
    title: 'Pages per round, by kind',
    yTitle: 'page records',
    labels,
    series: kindSeries(
      (g, k) => (k === CELL_KIND.ZERO ? g.records.ZERO : k === CELL_KIND.XBZRLE ? g.records.XBZRLE : k === CELL_KIND.PAGE ? g.newPages : k === CELL_KIND.MISS ? g.cacheMiss : k === CELL_KIND.OVERFLOW ? g.overflow : g.resent),
      kindsShown,
      kindNames,
    ),
    yFormat: shortNumber,
    tips,
  });
  const missName = classified ? 'cache miss rate' : 'resent rate (miss or overflow)';
  const rates = rateChart(
    labels,
    groups.map((g) => g.r.encodingRate),
    groups.map((g) => g.r.cacheMissRate),
    missName,
    tips,
  );
  const roundRows = groups
    .map(
      ({ label, r: g }) =>
        `<tr><td class="num">${esc(label)}</td><td class="num">${g.position}</td><td class="num">${g.bytes}</td><td class="num">${g.records.PAGE}</td><td class="num">${g.newPages}</td><td class="num">${classified ? g.cacheMiss : g.resent}</td><td class="num">${classified ? g.overflow : '–'}</td><td class="num">${g.records.ZERO}</td><td class="num">${g.records.XBZRLE}</td><td class="num">${g.xbzrleBytes}</td><td class="num">${g.encodingRate === null ? '–' : g.encodingRate.toFixed(2)}</td><td class="num">${g.cacheMissRate === null ? '–' : (100 * g.cacheMissRate).toFixed(1) + '%'}</td></tr>`,
    )
    .join('');

  // --- page maps ---
  const mapBlocks = report.blocks.filter((b) => b.frames.length > 0);
  const data = {
    pageSize: ps,
    rounds: roundCount,
    kinds: CELL_KIND_NAMES,
    cellPalette: base64(cellPalette(ps)),
    heatPalette: base64(heatPalette()),
    blocks: mapBlocks.map((b) => {
      const cols = b.cells >= 128 ? 128 : Math.min(b.cells, 32);
      const px = Math.max(2, Math.min(16, Math.floor(256 / cols)));
      const heat = new Uint8Array(b.cells * 2);
      const hv = new DataView(heat.buffer);
      for (let c = 0; c < b.cells; c++) hv.setUint16(c * 2, b.roundsSent[c]!, true);
      return {
        name: b.id,
        pages: b.pages,
        cells: b.cells,
        ppc: b.pagesPerCell,
        cols,
        px,
        heatPx: Math.max(2, Math.min(16, Math.floor(512 / cols))),
        heat: base64(heat),
        frames: b.frames.map((f) => ({ codes: base64(f.codes) })),
      };
    }),
  };
  const ramp = `linear-gradient(90deg,${hex(XB_LIGHT)},${hex(XB_DARK)})`;
  const heatRamp = `linear-gradient(90deg,${HEAT.map(hex).join(',')})`;
  const mapLegend = `<div class="legend">
<span><i style="background:${KIND_COLORS[0]}"></i>not sent</span>
<span><i style="background:${KIND_COLORS[1]}"></i>ZERO</span>
<span>XBZRLE <b class="ramp" style="background:${ramp}"></b><span class="mono">1 B → ${esc(shortBytes(ps))} per page</span></span>
<span><i style="background:${KIND_COLORS[3]}"></i>PAGE (first send)</span>
${classified ? `<span><i style="background:${KIND_COLORS[4]}"></i>PAGE: cache miss</span><span><i style="background:${KIND_COLORS[5]}"></i>PAGE: overflow</span>` : ''}
${report.classification !== 'content' ? `<span><i style="background:${KIND_COLORS[6]}"></i>PAGE: resent (miss or overflow)</span>` : ''}
</div>`;
  const blockSections = mapBlocks
    .map((b, bi) => {
      const frames = b.frames
        .map((f, fi) => {
          const label = f.firstRound === f.lastRound ? `round ${f.firstRound}` : `rounds ${f.firstRound}–${f.lastRound}`;
          return `<figure class="frame"><canvas class="map${b.cells >= 128 ? ' wide' : ''}" data-block="${bi}" data-frame="${fi}" data-label="${esc(label)}"></canvas><figcaption><span>${esc(label)}</span>${f.rounds > 1 ? `<span>${f.rounds} rounds merged</span>` : ''}</figcaption></figure>`;
        })
        .join('');
      const cellText = b.pagesPerCell === 1 ? 'one page per cell' : `${b.pagesPerCell} pages (${formatSize(b.pagesPerCell * ps)}) per cell`;
      const maxSent = b.roundsSent.reduce((m, v) => Math.max(m, v), 0);
      return `<div class="block" data-block="${bi}"><h3><span class="mono">${esc(b.id)}</span><span class="meta">${esc(formatSize(b.length))}${b.declared ? '' : ' (no MEM_SIZE: up to the last page sent)'} · ${b.cells} cells, ${esc(cellText)} · ${b.records} page records in ${plural(b.frames.reduce((n, f) => n + f.rounds, 0), 'round')}${b.roundsPerFrame > 1 ? ` · up to ${b.roundsPerFrame} rounds per map` : ''}</span></h3>
${b.frames.length > 1 ? `<div class="overview"><figure><canvas class="map heat" data-block="${bi}" data-frame="heat" data-max="${maxSent}"></canvas><figcaption class="note">All rounds: in how many rounds each cell was sent (lightest: 1, darkest: ${maxSent})</figcaption></figure></div>` : ''}
<div class="frames">${frames}</div></div>`;
    })
    .join('\n');
  const mapCount = mapBlocks.reduce((n, b) => n + b.frames.length + (b.frames.length > 1 ? 1 : 0), 0);

  const inference = classified
    ? `A PAGE record for a page the stream had already sent (as PAGE, ZERO or XBZRLE) means the sender did not send a delta: either its cache missed or the delta overflowed. The report tells them apart by encoding the page against its previous content (the receiver's copy, which is what the sender's cache holds): if the delta would not fit in a page it is counted as an <b>overflow</b>, otherwise as a <b>cache miss</b> (XBZRLE would have helped had the page been cached). Their sum equals QEMU's cache-miss + overflow; a page that missed the cache and would also have overflowed counts as an overflow here.${report.classification === 'partial' ? ' Page contents outgrew the memory limit part-way: later resent pages are shown as "resent".' : ''}`
    : 'A PAGE record for a page the stream had already sent (as PAGE, ZERO or XBZRLE) means the sender did not send a delta: its cache missed or the delta overflowed. Page contents were not kept (the stream declares more RAM than the content limit), so these are shown together as "resent".';

  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>${esc(title)}</h1><div class="sub">${esc(s.format === 'qemu' ? `QEMU migration stream${s.machine ? ` · ${s.machine}` : ''}` : 'RAM record stream')} · ${esc(formatSize(s.bytes))} read · ${roundCount} rounds · ${report.blocks.length} RAM blocks · page size ${ps}</div></header>
<main>
<section id="summary"><h2>Summary</h2>
<div class="cards">${cards.map(([k, v, d]) => `<div class="card"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div><div class="d">${esc(d)}</div></div>`).join('')}</div>
<div class="cols"><div><table class="kv" id="stat">${rows}</table></div>
<div><table id="blocks"><thead><tr><th>block</th><th class="num">size</th><th class="num">records</th><th class="num">rounds</th><th class="num" title="most rounds any page (cell) was sent in">max/page</th></tr></thead><tbody>${blockRows}</tbody></table>
${report.blocks.some((b) => !b.declared) ? '<p class="note">* no MEM_SIZE entry: size up to the last page sent.</p>' : ''}</div></div>
</section>
<section id="rounds"><h2>Rounds</h2>
${report.mappedRam ? '<p class="note"><b>A mapped-ram file</b>: every page present is stored once, at a fixed offset, rather than sent in rounds; the pages present are counted as PAGE in the first round and drawn as such in the maps.</p>' : ''}
<p class="note">A round is the run of records up to an EOS marker (in a QEMU file, one RAM section: START, each PART, END). Bytes are those of the RAM records. Hover over a bar for the round's numbers.</p>
${rounds.length === 0 ? '<p class="note">No RAM rounds in this input.</p>' : bytesChart + pagesChart + rates}
<details><summary>Per-round table (${groups.length} rows)</summary><table id="round-table"><thead><tr><th class="num">round</th><th class="num">at byte</th><th class="num">bytes</th><th class="num">PAGE</th><th class="num">first</th><th class="num">${classified ? 'miss' : 'resent'}</th><th class="num">overflow</th><th class="num">ZERO</th><th class="num">XBZRLE</th><th class="num">XBZRLE bytes</th><th class="num">enc. rate</th><th class="num">miss rate</th></tr></thead><tbody>${roundRows}</tbody></table></details>
</section>
<section id="deltas"><h2>Delta sizes</h2>
<p class="note">${r.XBZRLE} XBZRLE records, ${s['xbzrle-cache'].bytes} bytes (QEMU's count: record length − 8). Small deltas are where XBZRLE pays off; deltas near the page size save little.</p>
${histogram(report.deltaSizes)}
</section>
<section id="maps"><h2>Page maps</h2>
<p class="note">One map per RAM block and round, in address order (left to right, top to bottom); each cell is a page, or a group of pages in large blocks. A cell takes the colour of the record kind that cost the most bytes in it during the round; XBZRLE cells are darker for larger deltas, other kinds paler when fewer of the cell's pages were sent. Hover over a cell for its offset. ${inference}</p>
${mapLegend}
<div class="legend"><span>all-rounds map: rounds sent <b class="ramp" style="background:${heatRamp}"></b><span class="mono">1 → the block's most</span></span></div>
<div id="map-blocks" data-maps="${mapCount}">${blockSections || '<p class="note">No page records.</p>'}</div>
</section>
<footer>Generated by xbzrle report · self-contained: no network access</footer>
</main>
<div class="tip" id="tip"></div>
<script type="application/json" id="report-data">${json}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
