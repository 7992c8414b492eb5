// The KL coefficient: fixed, or adapted toward a target KL (Ziegler et al. 2019), as TRL's PPO has it.

export interface KLControlConfig {
  /** initial (or fixed) coefficient beta of the per-token KL penalty */
  klCoef: number;
  /** adapt beta so that the KL approaches this target (0: fixed beta) */
  targetKL: number;
  /** the horizon of the adaptation, in episodes (responses) */
  klHorizon: number;
}

export interface KLControlState {
  value: number;
}

export class KLController {
  value: number;

  constructor(private readonly config: KLControlConfig, state?: KLControlState) {
    this.value = state?.value ?? config.klCoef;
  }

  /** After a batch of `episodes` responses whose mean KL was `kl`. */
  update(kl: number, episodes: number): void {
    if (!(this.config.targetKL > 0)) return;
    const error = Math.min(0.2, Math.max(-0.2, kl / this.config.targetKL - 1));
    this.value *= 1 + (error * episodes) / this.config.klHorizon;
  }

  state(): KLControlState {
    return { value: this.value };
  }
}
