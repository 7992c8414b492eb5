// PPO's arithmetic against hand-computed values and finite differences: GAE, whitening, the two
// KL estimators, the clipped surrogate and the clipped value loss, and the KL controller.
import { describe, expect, it } from 'vitest';

import { KLController, gae, klPenalty, lossNormalisers, policyLoss, resolvePPOConfig, shapeRewards, valueLoss, whiten } from '@s2s/ppo';

describe('GAE', () => {
  it('matches the recursion worked by hand', () => {
    // gamma 0.9, lambda 0.5; V after the last token is 0
    const r = [1, 0, 2];
    const v = [0.5, 1, 0.25];
    const d2 = 2 - 0.25; // 1.75
    const d1 = 0 + 0.9 * 0.25 - 1; // -0.775
    const d0 = 1 + 0.9 * 1 - 0.5; // 1.4
    const a2 = d2;
    const a1 = d1 + 0.45 * a2;
    const a0 = d0 + 0.45 * a1;
    const { advantages, returns } = gae(r, v, 0.9, 0.5);
    expect(advantages[0]).toBeCloseTo(a0, 12);
    expect(advantages[1]).toBeCloseTo(a1, 12);
    expect(advantages[2]).toBeCloseTo(a2, 12);
    expect(returns).toEqual(advantages.map((a, t) => a + v[t]));
  });

  it('with gamma = lambda = 1 and no critic, every token gets the sum of the rewards after it', () => {
    expect(gae([0, 0, 3, 0, 1], [0, 0, 0, 0, 0], 1, 1).advantages).toEqual([4, 4, 4, 1, 1]);
  });
});

describe('reward shaping', () => {
  // two responses: the first stopped with EOS (3 tokens), the second ran out of tokens (2)
  const r = { scores: [3, -4], perToken: [[0, 0, 3], [-5, 1]] };
  const eos = [true, false];
  const lp = [[-1, -2, -0.5], [-1, -1]];
  const ref = [[-1.5, -2, -0.25], [-0.5, -1]];
  const zeros = [[0, 0, 0], [0, 0]];
  const plain = { rewardClip: 0, missingEosPenalty: 0, klEstimator: 'k1', whitenRewards: false, whitenAdvantages: false, gamma: 1, lam: 1 } as const;

  it('subtracts klCoef * KL at every token and sums the rest with GAE', async () => {
    const s = await shapeRewards(r, eos, lp, ref, zeros, plain, 0.5);
    expect(s.kl).toEqual([[0.5, 0, -0.25], [-0.5, 0]]);
    expect(s.rewards).toEqual([[-0.25, 0, 3.125], [-4.75, 1]]);
    // gamma = lambda = 1, no critic: each token's advantage is the sum of the rewards from it on
    expect(s.advantages).toEqual([[2.875, 3.125, 3.125], [-3.75, 1]]);
    expect(s.returns).toEqual(s.advantages);
    expect(s.scores).toEqual([3, -4]);
  });

  it('clips each token score, and charges a response without EOS at its last token', async () => {
    const s = await shapeRewards(r, eos, lp, lp, zeros, { ...plain, rewardClip: 2, missingEosPenalty: 1 }, 0.5);
    // the same log-probs: no KL; clipped to [-2, 2]; the second response pays 1 at its end
    expect(s.rewards).toEqual([[0, 0, 2], [-2, 0]]);
    expect(s.scores).toEqual([3, -5]);
  });

  it('uses k3 when asked, and can scale the rewards to unit variance without moving their mean', async () => {
    const k3 = await shapeRewards(r, eos, lp, ref, zeros, { ...plain, klEstimator: 'k3' }, 1);
    expect(k3.kl[0][0]).toBeCloseTo(Math.expm1(-0.5) + 0.5, 12);
    expect(k3.kl.flat().every((x) => x >= 0)).toBe(true);
    const w = await shapeRewards(r, eos, lp, lp, zeros, { ...plain, whitenRewards: true }, 0);
    const raw = [0, 0, 3, -5, 1];
    const mean = raw.reduce((a, b) => a + b) / 5;
    const sd = Math.sqrt(raw.reduce((a, b) => a + (b - mean) ** 2, 0) / 5);
    w.rewards.flat().forEach((x, i) => expect(x).toBeCloseTo((raw[i] - mean) / sd + mean, 6));
  });
});

describe('whitening', () => {
  it('gives zero mean and unit variance over all tokens of all rows', () => {
    const w = whiten([[1, 2], [3, 4, 5]]);
    const all = w.flat();
    const mean = all.reduce((a, b) => a + b) / all.length;
    const v = all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length;
    expect(mean).toBeCloseTo(0, 12);
    expect(v).toBeCloseTo(1, 6);
    expect(w[0][0]).toBeCloseTo((1 - 3) / Math.sqrt(2), 6);
    // shiftMean false keeps the mean (TRL's whiten_rewards)
    expect(whiten([[1, 3]], { shiftMean: false })[0]).toEqual([expect.closeTo(1, 6), expect.closeTo(3, 6)]);
  });
});

describe('KL estimators', () => {
  it('k1 is log p - log q; k3 is (q/p - 1) - log(q/p), never negative', () => {
    const lp = [-1, -2, -0.5];
    const ref = [-1.5, -1, -0.5];
    expect(klPenalty(lp, ref, 'k1')).toEqual([0.5, -1, 0]);
    const k3 = klPenalty(lp, ref, 'k3');
    expect(k3[0]).toBeCloseTo(Math.exp(-0.5) - 1 + 0.5, 12);
    expect(k3[1]).toBeCloseTo(Math.exp(1) - 1 - 1, 12);
    expect(k3[2]).toBe(0);
    expect(k3.every((x) => x >= 0)).toBe(true);
  });
});

describe('the clipped surrogate', () => {
  const oldLp = [-1, -1, -1, -1];
  const adv = [1, -1, 1, -1];
  // ratios 1.5 (A>0: clipped at 1.2), 0.5 (A<0: clipped at 0.8), 0.9 and 1.1 (inside)
  const newLp = [-1 + Math.log(1.5), -1 + Math.log(0.5), -1 + Math.log(0.9), -1 + Math.log(1.1)];

  it('takes the pessimistic branch, token by token', () => {
    const r = policyLoss(newLp, oldLp, adv, 0.2);
    const want = (-1 * 1.2 + 1 * 0.8 + -1 * 0.9 + 1 * 1.1) / 4;
    expect(r.loss).toBeCloseTo(want, 12);
    expect(r.clipfrac).toBe(0.5);
    expect(r.grad[0]).toBe(0);
    expect(r.grad[1]).toBe(0);
    expect(r.approxKL).toBeCloseTo((0.5 / 4) * (Math.log(1.5) ** 2 + Math.log(0.5) ** 2 + Math.log(0.9) ** 2 + Math.log(1.1) ** 2), 12);
  });

  it('has the gradient finite differences give', () => {
    const adv2 = [0.7, -1.3, 0.4, -0.2];
    const lp = [-1.1, -0.8, -1.05, -0.95];
    const { grad } = policyLoss(lp, oldLp, adv2, 0.2);
    const h = 1e-6;
    lp.forEach((_, t) => {
      const up = [...lp];
      const down = [...lp];
      up[t] += h;
      down[t] -= h;
      const fd = (policyLoss(up, oldLp, adv2, 0.2).loss - policyLoss(down, oldLp, adv2, 0.2).loss) / (2 * h);
      expect(grad[t]).toBeCloseTo(fd, 6);
    });
  });
});

describe('loss averaging over a minibatch', () => {
  // a minibatch of three responses: 1 token (an empty response's EOS), 2 and 5 tokens
  const rows = [
    { lp: [-0.5], old: [-0.6], adv: [1.0] },
    { lp: [-1, -2], old: [-1.1, -1.9], adv: [-0.5, 0.25] },
    { lp: [-1, -1, -1, -1, -1], old: [-1, -1, -1, -1, -1], adv: [0.1, 0.2, 0.3, 0.4, 0.5] },
  ];
  const lengths = rows.map((r) => r.lp.length);
  const tokens = 8;
  const total = (norms: number[]) => rows.reduce((a, r, i) => a + policyLoss(r.lp, r.old, r.adv, 0.2, norms[i]).loss, 0);
  // the definitions, written out: the mean over every token; the mean over responses of each one's token mean
  const surrogate = (r: (typeof rows)[number], t: number) => {
    const ratio = Math.exp(r.lp[t] - r.old[t]);
    return Math.max(-r.adv[t] * ratio, -r.adv[t] * Math.min(1.2, Math.max(0.8, ratio)));
  };
  const perToken = rows.flatMap((r) => r.lp.map((_, t) => surrogate(r, t)));

  it("'token': every token weighs the same (TRL's masked mean)", () => {
    const norms = lossNormalisers(lengths, 'token', tokens, 3);
    expect(norms).toEqual([8, 8, 8]);
    expect(total(norms)).toBeCloseTo(perToken.reduce((a, b) => a + b, 0) / tokens, 12);
  });

  it("'sequence': every response weighs the same whatever its length (safe-rlhf's), an empty one included", () => {
    const norms = lossNormalisers(lengths, 'sequence', tokens, 3);
    expect(norms).toEqual([3, 6, 15]);
    const want = rows.reduce((a, r) => a + r.lp.reduce((x, _, t) => x + surrogate(r, t), 0) / r.lp.length, 0) / rows.length;
    expect(total(norms)).toBeCloseTo(want, 12);
    // the one-token response's gradient is 8/3 times its weight under token averaging
    const g = (n: number[]) => policyLoss(rows[0].lp, rows[0].old, rows[0].adv, 0.2, n[0]).grad[0];
    expect(g(norms) / g(lossNormalisers(lengths, 'token', tokens, 3))).toBeCloseTo(8 / 3, 12);
    // data parallel: the counts are the whole minibatch's over the ranks
    expect(lossNormalisers([2], 'sequence', 16, 6)).toEqual([12]);
    expect(() => resolvePPOConfig({ lossAveraging: 'response' as never })).toThrow("lossAveraging must be 'token' or 'sequence'");
  });
});

describe('the clipped value loss', () => {
  it('takes the larger error and has the gradient finite differences give', () => {
    const old = [0, 0, 0];
    const ret = [1, -1, 0.5];
    const v = [0.5, 0.4, 0.1];
    const r = valueLoss(v, old, ret, 0.2);
    // token 0: v=0.5 clipped to 0.2 -> (0.2-1)^2 = 0.64 > 0.25: clipped; token 1: clipped 0.2 -> 1.44 < 1.96
    expect(r.loss).toBeCloseTo((0.5 * (0.64 + 1.96 + 0.16)) / 3, 12);
    expect(r.clipfrac).toBeCloseTo(1 / 3, 12);
    const h = 1e-6;
    v.forEach((_, t) => {
      const up = [...v];
      const down = [...v];
      up[t] += h;
      down[t] -= h;
      const fd = (valueLoss(up, old, ret, 0.2).loss - valueLoss(down, old, ret, 0.2).loss) / (2 * h);
      expect(r.grad[t]).toBeCloseTo(fd, 6);
    });
  });
});

describe('the KL controller', () => {
  it('stays fixed without a target, and moves beta toward the target KL with one', () => {
    const cfg = resolvePPOConfig({ klCoef: 0.1, targetKL: 0 });
    const fixed = new KLController(cfg);
    fixed.update(100, 64);
    expect(fixed.value).toBe(0.1);
    const adaptive = new KLController({ ...cfg, targetKL: 6, klHorizon: 10000 });
    adaptive.update(12, 1000); // error clipped to +0.2
    expect(adaptive.value).toBeCloseTo(0.1 * (1 + (0.2 * 1000) / 10000), 12);
    adaptive.update(3, 1000); // error -0.5 clipped to -0.2
    expect(adaptive.value).toBeCloseTo(0.1 * 1.02 * 0.98, 12);
  });
});

describe('PPO config', () => {
  it('has the field\'s defaults and names the bad field', () => {
    expect(resolvePPOConfig()).toMatchObject({ clipRange: 0.2, gamma: 1, lam: 0.95, ppoEpochs: 4, klCoef: 0.05 });
    expect(() => resolvePPOConfig({ batchSize: 10, miniBatchSize: 4 })).toThrow('must be a multiple of miniBatchSize');
    expect(() => resolvePPOConfig({ clipRange: -1 })).toThrow('clipRange must be a number');
    expect(() => resolvePPOConfig({ klEstimator: 'k2' as never })).toThrow("klEstimator must be 'k1' or 'k3'");
    expect(() => resolvePPOConfig({ cliprange: 0.1 } as never)).toThrow('unknown field "cliprange"');
    expect(() => resolvePPOConfig({ topK: 40 })).toThrow('topK must be 0 (all tokens), got 40');
    expect(() => resolvePPOConfig({ topP: 0.95 })).toThrow('would make every rollout off-policy');
  });
});
