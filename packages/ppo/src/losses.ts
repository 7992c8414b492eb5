// The PPO objectives on per-token arrays, each with its derivative: the clipped surrogate with
// respect to the new log-probs (sent to the engine as dlogprob) and the clipped value loss with
// respect to the critic's values (sent as dvalue).

export interface PolicyLossResult {
  /** mean over tokens of max(-A r, -A clip(r, 1 - eps, 1 + eps)) */
  loss: number;
  /** d loss / d logprob_new per token */
  grad: number[];
  /** share of tokens where the clipped branch was the larger (and so carried no gradient) */
  clipfrac: number;
  /** 0.5 * mean((logprob_new - logprob_old)^2), TRL's approxkl */
  approxKL: number;
  /** mean ratio */
  ratio: number;
}

/** `count` is the normaliser (tokens in the minibatch); the loss and its gradient are means over it. */
export function policyLoss(newLogprob: readonly number[], oldLogprob: readonly number[], advantages: readonly number[], clipRange: number, count = newLogprob.length): PolicyLossResult {
  let loss = 0;
  let clipped = 0;
  let kl = 0;
  let ratioSum = 0;
  const grad = newLogprob.map((lp, t) => {
    const logRatio = lp - oldLogprob[t];
    const r = Math.exp(logRatio);
    const a = advantages[t];
    const unclipped = -a * r;
    const clippedLoss = -a * Math.min(1 + clipRange, Math.max(1 - clipRange, r));
    loss += Math.max(unclipped, clippedLoss);
    kl += 0.5 * logRatio * logRatio;
    ratioSum += r;
    // d(-A r)/d logprob = -A r; the clipped branch is constant in logprob once it is the larger
    if (clippedLoss > unclipped) {
      clipped++;
      return 0;
    }
    return (-a * r) / count;
  });
  return { loss: loss / count, grad, clipfrac: clipped / count, approxKL: kl / count, ratio: ratioSum / count };
}

export interface ValueLossResult {
  /** 0.5 * mean(max((v - R)^2, (clip(v, v_old - eps, v_old + eps) - R)^2)) */
  loss: number;
  /** d loss / d v per token */
  grad: number[];
  /** share of tokens where the clipped term was the larger */
  clipfrac: number;
}

export function valueLoss(values: readonly number[], oldValues: readonly number[], returns: readonly number[], clipRange: number, count = values.length): ValueLossResult {
  let loss = 0;
  let clipped = 0;
  const grad = values.map((v, t) => {
    const lo = oldValues[t] - clipRange;
    const hi = oldValues[t] + clipRange;
    const vc = Math.min(hi, Math.max(lo, v));
    const e1 = (v - returns[t]) ** 2;
    const e2 = (vc - returns[t]) ** 2;
    loss += 0.5 * Math.max(e1, e2);
    // inside the clip range both terms are equal; outside it the clipped term is constant in v
    if (e2 > e1) {
      clipped++;
      return 0;
    }
    return (v - returns[t]) / count;
  });
  return { loss: loss / count, grad, clipfrac: clipped / count };
}

/**
 * Each response's normaliser for policyLoss/valueLoss (their `count`) in a minibatch of responses
 * of `lengths` tokens, where `tokens` and `responses` count the whole minibatch over every
 * data-parallel rank: 'token' averages over all the tokens (every token weighs 1 / tokens);
 * 'sequence' averages each response over its own tokens, then over the responses (a token of a
 * response of n tokens weighs 1 / (n * responses)).
 */
export function lossNormalisers(lengths: readonly number[], averaging: 'token' | 'sequence', tokens: number, responses: number): number[] {
  return lengths.map((n) => (averaging === 'token' ? tokens : Math.max(1, n) * responses));
}
