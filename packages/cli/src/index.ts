// @s2s/cli: the `s2s` command, importable for tests and embedding.
export { main } from './main.js';
export { sampleText, LEXICON } from './sample-text.js';
export { trainText, TRAIN_TEXT_DEFAULTS, type TrainTextOptions, type TrainTextResult } from './commands/train-text.js';
