import { formatBytes as formatSize } from '../format/sizes.js';
import type { ReportSummary } from './build.js';

export { formatSize };


/**
 * The rows of the `xbzrle stat` table for a summary, as [label, value] pairs
 * in stat's order and wording (the block list and the delta sizes, which stat
 * prints as sub-tables, are left to the caller).
 */
export function summaryRows(s: ReportSummary): [string, string][] {
  const rows: [string, string][] = [];
  const r = s.records;
  rows.push(['input', `${s.format === 'qemu' ? 'QEMU migration stream' : 'RAM record stream (delta)'}, ${formatSize(s.bytes)}`]);
  if (s.format === 'qemu') {
    rows.push(['machine', s.machine ?? '(no configuration section)']);
    if ((s.capabilities ?? []).length > 0) rows.push(['capabilities', s.capabilities!.join(', ')]);
    const sec = s.sections;
    if (sec !== undefined) rows.push(['ram sections', `START ${sec.start}, PART ${sec.part}, END ${sec.end}${s.ramComplete === true ? ' (all RAM read)' : ' (RAM incomplete)'}`]);
    const st = s.stoppedAt;
    if (st !== undefined) {
      const what =
        st.reason === 'section'
          ? `${st.type} section${st.idstr === undefined ? ` ${st.sectionId}` : ` "${st.idstr}"`} (not RAM: device state or another handler)`
          : st.reason === 'eof'
            ? 'the EOF marker'
            : 'the end of the input';
      rows.push(['stopped at', `byte ${st.offset}: ${what}`]);
    }
  }
  rows.push(['page size', String(s.pageSize)]);
  rows.push(['blocks', s.blocks.length === 0 ? '(no MEM_SIZE record)' : String(s.blocks.length)]);
  rows.push(['records', `PAGE ${r.PAGE}  ZERO ${r.ZERO}  XBZRLE ${r.XBZRLE}  MEM_SIZE ${r.MEM_SIZE}  EOS ${r.EOS}`]);
  rows.push(['bytes', `${s.ram.transferred} in RAM records, carrying ${formatSize(s.pageBytes)} of pages (ratio ${s.ratio.toFixed(2)}:1)`]);
  const x = s['xbzrle-cache'];
  if (r.XBZRLE > 0) rows.push(['xbzrle', `${r.XBZRLE} deltas, ${x.bytes} bytes (${(x.bytes / r.XBZRLE).toFixed(1)} per page, encoding rate ${x['encoding-rate'].toFixed(2)})`]);
  rows.push(['query-migrate', `normal ${s.ram.normal}, normal-bytes ${s.ram['normal-bytes']}, duplicate ${s.ram.duplicate}, transferred ${s.ram.transferred}`]);
  return rows;
}
