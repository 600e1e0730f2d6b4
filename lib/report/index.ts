// `xbzrle report`: a migration or delta stream as one self-contained HTML page.
export {
  buildMigrationReport,
  configuredPageSize,
  DEFAULT_CONTENT_MEMORY,
  type MigrationReport,
  type MigrationReportOptions,
  type ReportInput,
  type InferredCounts,
} from './build.js';
export {
  MigrationCollector,
  DEFAULT_COLLECTOR_LIMITS,
  DELTA_SIZE_EDGES,
  deltaSizeBucket,
  mergeRounds,
  type BlockMap,
  type CollectorLimits,
  type MapFrame,
  type RoundStats,
} from './collect.js';
export { CELL_KIND, CELL_KIND_NAMES, CELL_KINDS, cellCode, cellLevel, codeKind, codeLevel, levelBytes, mergeInSpace, mergeInTime, type CellKind } from './cells.js';
export { renderReportHtml, type RenderReportOptions } from './html.js';
export { formatSize, summaryRows, qemuFileSummary, streamSummary, sizeBuckets, describeStop, describeVersion, describeQueryMigrate, type ReportSummary, type SizeBucket } from './summary.js';
