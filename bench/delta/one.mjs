// One timed run of the library's diff or patch in its own process (for peak RSS):
//   node bench/delta/one.mjs diff OLD NEW DELTA [--no-compress] [--level N] [--threads N]
//   node bench/delta/one.mjs patch OLD DELTA OUT [--threads N]
// (--threads is left out of the call when not given: an older build without it runs as before.)
import { loadPackage } from '../lib/package.mjs';

const { diffImages, patchImage } = await loadPackage();

const [cmd, a, b, c, ...rest] = process.argv.slice(2);
const level = rest.includes('--level') ? Number(rest[rest.indexOf('--level') + 1]) : undefined;
const threads = rest.includes('--threads') ? { threads: Number(rest[rest.indexOf('--threads') + 1]) } : {};
const t0 = performance.now();
let stats;
if (cmd === 'diff') stats = await diffImages(a, b, c, { force: true, compress: !rest.includes('--no-compress'), level, ...threads });
else if (cmd === 'patch') stats = (await patchImage(a, b, c, { force: true, ...threads }))[0];
else throw new Error(`unknown ${cmd}`);
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, rss: process.resourceUsage().maxRSS * 1024, stats }) + '\n');
