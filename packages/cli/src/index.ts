// @s2s/cli: the `s2s` command, importable for tests and embedding.
export { main, COMMANDS, type MainOptions } from './main.js';
export { sampleText, LEXICON } from './sample-text.js';
export { trainText, TRAIN_TEXT_DEFAULTS, type TrainTextOptions, type TrainTextResult } from './commands/train-text.js';
// the reward model's folder is @s2s/rm's (loadRewardModel); re-exported for the CLI's earlier users
export { REWARD_MODEL_FILE, readRewardModelKind, type RewardModelKind, type RewardModelInfo } from '@s2s/rm';
export { SFT_CONFIG_FILE } from './commands/sft.js';
export { RM_CONFIG_FILE, EVAL_RESULTS_FILE } from './commands/rm-train.js';
export { EXIT_INTERRUPTED } from './interrupt.js';
export { PPO_CONFIG_FILE } from './ppo-run.js';
export { generateResponses, type GeneratedRow, type GenerationSettings } from './generation.js';
export { judgeRows, summarizeJudgements, matchByPrompt, pairwiseWinRate, taskJudge, checkTaskPrompts, type Judge, type JudgedRow, type JudgementSummary, type PairedRow } from './judging.js';
export { loadUserJudge } from './user-judge.js';
export { lengthProbe, correlation, PROBE_FILLERS, type LengthProbe } from './demo/probe.js';
