// What a subcommand is (its name, help, option schema and run function) and the option groups
// several commands share.
import type { Distributed } from '@s2s/core';

import type { ParsedOptions } from './parse-options.js';
import type { OptionSchema } from './options.js';

export interface RunContext {
  /** aborted by Ctrl-C for interruptible commands (training: stop with a checkpoint) */
  signal: AbortSignal;
  /** this process's rank of a data-parallel run (`s2s launch`, or WORLD_SIZE set), else the single rank */
  dist: Distributed;
  /** for a command with `passThrough`: the arguments after `--` */
  args?: string[];
}

export interface Command<S extends OptionSchema = OptionSchema> {
  /** as typed after `s2s`: "sft", "rm train" */
  name: string;
  /** one line for the top-level help */
  summary: string;
  description: string;
  options: S;
  examples?: string[];
  /** Ctrl-C aborts its signal (it then writes a checkpoint) instead of ending the process */
  interruptible?: boolean;
  /** runs data parallel when started as several ranks (WORLD_SIZE > 1); other commands refuse that */
  distributed?: boolean;
  /** the arguments after `--` are not its options but are handed to run() (ctx.args) */
  passThrough?: boolean;
  /** returns the exit status */
  run(parsed: ParsedOptions<S>, ctx: RunContext): Promise<number>;
}

export const defineCommand = <S extends OptionSchema>(c: Command<S>): Command<S> => c;

/** Where the engine runs: every command that runs a model takes these (main() applies them). */
export const engineOptions = {
  threads: { type: 'int', min: 0, group: 'run', help: 'engine threads (default: S2S_NUM_THREADS, else all cores)' },
  device: {
    type: 'enum',
    values: ['auto', 'cpu', 'cuda'],
    group: 'run',
    help: 'where models run: auto (CUDA when usable, else the CPU), cpu or cuda (default: S2S_DEVICE, else auto)',
  },
} as const satisfies OptionSchema;

export const modelInputOptions = {
  tokenizer: { type: 'string', arg: 'DIR', group: 'model', help: 'tokenizer folder (tokenizer.json); default: beside the model' },
  template: {
    type: 'string',
    arg: 'default|testbed|chat|FILE',
    group: 'model',
    help:
      "prompt/response template: default, testbed, chat (the model's own chat template, from its tokenizer_config.json or chat_template.jinja), " +
      "a JSON file of its fields, or a .jinja chat template; default: the model's saved one",
  },
} as const satisfies OptionSchema;

/** Commands that read data: what special-token text in it ("<|endoftext|>", "<eos>") becomes. */
export const specialTextOptions = {
  specialTokensInText: {
    type: 'enum',
    values: ['encode', 'literal', 'error'],
    group: 'data',
    help:
      "special-token text inside the data (e.g. \"<|endoftext|>\" in a prompt): encode as the control token (Hugging Face's default; rows with it are counted in a warning), " +
      'literal (ordinary characters) or error (refused, naming file, line and field); default: encode. The template\'s own markup is not affected',
  },
} as const satisfies OptionSchema;

export const evalOptions = {
  evalData: { type: 'string', arg: 'FILE', group: 'data', help: 'evaluation data in the same format (instead of --eval-split)' },
  evalSplit: { type: 'float', min: 0, max: 1, exclusiveMax: true, default: 0.05, group: 'data', help: 'share of --data held out for evaluation, drawn by --seed' },
} as const satisfies OptionSchema;

export const lengthOptions = {
  maxLength: { type: 'int', min: 1, group: 'data', help: "longest example in tokens (default: the model's context)" },
  overflow: {
    type: 'enum',
    values: ['truncate', 'skip'],
    default: 'truncate',
    group: 'data',
    help: 'longer examples: drop prompt tokens from the left, or leave them out (counted either way)',
  },
} as const satisfies OptionSchema;

/** The final model's dtype (training commands): what the model came in, unless told otherwise. */
export const saveOptions = {
  saveDtype: {
    type: 'enum',
    values: ['float32', 'bfloat16', 'float16'],
    group: 'run',
    help: "weights dtype of the final model (default: the dtype --model came in, float32 for a new model); checkpoints keep float32 for an exact resume",
  },
} as const satisfies OptionSchema;

export const runOptions = {
  resume: {
    type: 'string',
    optionalValue: true,
    arg: 'DIR',
    group: 'run',
    help: "continue a stopped run from checkpoint DIR, or alone: the latest in --out; options not given come from the run's saved config",
  },
  ...engineOptions,
} as const satisfies OptionSchema;
