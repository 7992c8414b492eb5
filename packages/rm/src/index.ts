// @s2s/rm: reward models -- the scalar (Bradley-Terry) baseline and the seq2seq reward model --
// and the token-level reward extraction that only the latter makes possible.
export * from './extract.js';
export * from './seq2seq.js';
export * from './scalar.js';
export * from './explain.js';
export * from './generated.js';
export * from './reward-model-folder.js';
