// @s2s/core: the engine's TypeScript face.
export * from './config.js';
export * from './engine.js';
export * from './model.js';
export * from './safetensors.js';
export * from './fsutil.js';
export * from './checkpoint.js';
export * from './tokenizer.js';
export * from './data/jsonl.js';
export * from './data/template.js';
export * from './data/batching.js';
export * from './random.js';
export * from './train/schedule.js';
export * from './train/optimizer.js';
export * from './train/checkpoints.js';
export * from './train/trainer.js';
export * from './train/supervised.js';
