// @s2s/ppo: PPO with scalar, token-level and sentence-level rewards. Arrives with the PPO issue.
export {};
