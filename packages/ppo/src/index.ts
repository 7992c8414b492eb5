// @s2s/ppo: PPO with scalar, token-level (PPO-T) and sentence-level (PPO-S) rewards.
export * from './advantages.js';
export * from './config.js';
export * from './kl-control.js';
export * from './losses.js';
export * from './rewards.js';
export * from './rollout.js';
export * from './trainer.js';
