// @s2s/tasks: the synthetic alignment testbed.
export * from './types.js';
export { summarize, judgeSummary, promptFacts, summary, type Facts } from './summarize.js';
export { safety, judgeSafety, requestTopic, isHarmfulRequest } from './safety.js';
export { winRate, type WinRate } from './winrate.js';
export { datasetStats, type TaskDataStats } from './stats.js';
export { TASKS, getTask } from './registry.js';
export { TESTBED_SPECIALS, TESTBED_TEMPLATE, testbedTokenizer, DATA_FILES, makeTaskData } from './dataset.js';
