// @s2s/rm: reward models (the scalar baseline and the seq2seq reward model). Arrives with the reward-model issue.
export {};
