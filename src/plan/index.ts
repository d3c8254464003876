// migstream/plan (Node: it reads dump files): dirty-rate estimation and the pre-copy planner, with
// Node's codecs plugged in so the measured codec rates are the ones a Node relay or CLI gets.
import '../node/install.js';

export { Trace, MemoryDumpSource, type DumpSource } from './trace.js';
export { FileDumpSource } from './files.js';
export { dirtyRateReport, exactRates, sampleRates, workingSet, crc32, type DirtyRateReport, type SampleOptions } from './dirty-rate.js';
export { parseSetting, measureCodecRate, hostShare, DEFAULT_SETTINGS, type PlanSetting, type CodecRate, type HostCpu } from './settings.js';
export { simulate, type PlanOptions, type PlanResult, type RoundResult, type AutoConvergeParams } from './simulate.js';
export { planMigration, recommend, type PlanRunOptions, type PlanOutcome, type Recommendation } from './plan.js';
export { renderPlanTable, renderPlanHtml, type PlanReport } from './report.js';
