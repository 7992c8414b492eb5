// The `s2s` command: finds the subcommand, reads its options, runs it, and turns errors into a
// message and an exit status (0 done, 1 failed, 2 usage error, 130 stopped by Ctrl-C).
import { type Device, Distributed, cudaStatus, getDefaultDevice, pinGpuForRank, readDistributedEnv, setDefaultDevice, setNumThreads } from '@s2s/core';

import type { Command } from './command.js';
import { compareCommand } from './commands/compare.js';
import { dataMakeCommand } from './commands/data-make.js';
import { dataTokenizerCommand } from './commands/data-tokenizer.js';
import { evalCommand } from './commands/eval.js';
import { launchCommand } from './commands/launch.js';
import { generateCommand } from './commands/generate.js';
import { ppoCommand } from './commands/ppo.js';
import { rmExplainCommand } from './commands/rm-explain.js';
import { rmScoreCommand } from './commands/rm-score.js';
import { rmTrainCommand } from './commands/rm-train.js';
import { sftCommand } from './commands/sft.js';
import { demoCommand } from './commands/demo.js';
import { trainTextCommand } from './commands/train-text.js';
import { helpText } from './help.js';
import { onInterrupt } from './interrupt.js';
import { UsageError } from './options.js';
import { parseOptions } from './parse-options.js';

export const COMMANDS: readonly Command[] = [demoCommand, trainTextCommand, dataMakeCommand, dataTokenizerCommand, sftCommand, rmTrainCommand, rmScoreCommand, rmExplainCommand, ppoCommand, generateCommand, evalCommand, compareCommand, launchCommand];

const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 3;
const HELP = `s2s: RLHF with sequence-to-sequence reward models, on a native engine

usage: s2s <command> [flags]

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

every command takes:
  --config FILE   options from a JSON file (keys: the option names, camelCase or kebab-case);
                  flags on the command line win over it
  -h, --help      the command's help: s2s <command> --help

Training commands (sft, rm train, ppo) stop on Ctrl-C after the current step, write a checkpoint
and exit with status 130; run them again with --resume to continue. Exit status: 0 done, 1 failed,
2 usage error.

the paper's pipeline on the testbed:
  s2s data make --task summarize --out data/summarize
  s2s sft --data data/summarize/sft.jsonl --template testbed --out runs/sft
  s2s rm train --seq2seq --data data/summarize/pairs.jsonl --model runs/sft/final --out runs/s2s-rm
  s2s rm explain --model runs/s2s-rm/final --data data/summarize/pairs.jsonl --response-field rejected
  s2s ppo --reward token --policy runs/sft/final --reward-model runs/s2s-rm/final \
          --prompts data/summarize/rl_prompts.jsonl --out runs/ppo-t
  s2s eval --task summarize --model runs/ppo-t/final --prompts data/summarize/eval_id.jsonl
`;

/** The command named by the first one or two words, and the arguments after it. */
function findCommand(argv: readonly string[]): { cmd?: Command; rest: string[]; group?: string } {
  const two = COMMANDS.find((c) => c.name === `${argv[0]} ${argv[1]}`);
  if (two) return { cmd: two, rest: argv.slice(2) };
  const one = COMMANDS.find((c) => c.name === argv[0]);
  if (one) return { cmd: one, rest: argv.slice(1) };
  const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
  if (group.length) return { group: argv[0], rest: argv.slice(1) };
  return { rest: argv.slice(1) };
}

function groupHelp(group: string): string {
  const cmds = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  return `usage: s2s ${group} <${cmds.map((c) => c.name.split(' ')[1]).join('|')}> [flags]\n\n${cmds.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}\n`;
}

// node's parseArgs explains at length how to pass a positional that starts with "-"; the first sentence says it all
const shortParseError = (m: string) => m.split(/\. (?=[A-Z])/)[0];

/** A bad S2S_DEVICE, or CUDA asked for where it cannot run, named before any work starts. */
function checkDevice(flag: unknown): void {
  if (getDefaultDevice() !== 'cuda' || cudaStatus().available) return;
  throw new Error(`${flag ? '--device cuda' : 'S2S_DEVICE=cuda'}: the CUDA backend is unavailable: ${cudaStatus().reason}`);
}

// " [rank N]" in a data-parallel run's error messages
let rankLabel = '';

/**
 * Ranks other than 0 print nothing but errors (rank 0 reports the run), as torchrun's users expect
 * of their scripts; returns what undoes it.
 */
function quietConsole(): () => void {
  const saved = { log: console.log, info: console.info, warn: console.warn };
  console.log = console.info = console.warn = () => {};
  return () => Object.assign(console, saved);
}

export interface MainOptions {
  /** aborting it stops a training command as Ctrl-C does (for callers that run s2s in-process) */
  signal?: AbortSignal;
}

export async function main(argv: string[], opts: MainOptions = {}): Promise<number> {
  const [first] = argv;
  let helpHint = 's2s --help';
  try {
    if (!first || first === '-h' || first === '--help' || first === 'help') {
      console.log(HELP);
      return first ? 0 : 2;
    }
    const { cmd, rest, group } = findCommand(argv);
    if (group) {
      if (rest[0] === '-h' || rest[0] === '--help' || rest.length === 0) {
        console.log(groupHelp(group));
        return rest.length ? 0 : 2;
      }
      helpHint = `s2s ${group} --help`;
      throw new UsageError(`unknown command "${group} ${rest[0]}"`);
    }
    if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(first)}`);
    helpHint = `s2s ${cmd.name} --help`;
    const dd = cmd.passThrough ? rest.indexOf('--') : -1;
    const parsed = await parseOptions(cmd.options, dd >= 0 ? rest.slice(0, dd) : rest, cmd.name);
    const args = dd >= 0 ? rest.slice(dd + 1) : [];
    if (parsed.help) {
      console.log(helpText(cmd));
      return 0;
    }
    const { threads, device } = parsed.values as Record<string, unknown>;
    if (typeof threads === 'number') setNumThreads(threads);
    setDefaultDevice(device as Device | undefined);
    const ranks = readDistributedEnv();
    if (ranks && ranks.worldSize > 1 && !cmd.distributed)
      throw new UsageError(
        `s2s ${cmd.name} does not run data parallel, and this process is rank ${ranks.rank} of WORLD_SIZE=${ranks.worldSize}: ` +
          `the data-parallel commands are ${COMMANDS.filter((c) => c.distributed).map((c) => c.name).join(', ')}`,
      );
    let dist = Distributed.single;
    let restoreConsole = () => {};
    // each rank its own GPU, before anything initialises CUDA
    if (cmd.distributed) pinGpuForRank();
    try {
      if ('device' in cmd.options) checkDevice(device);
      if (cmd.distributed) {
        dist = await Distributed.fromEnv();
        rankLabel = dist.worldSize > 1 ? ` [rank ${dist.rank}]` : '';
        if (!dist.isMain) restoreConsole = quietConsole();
      }
      if (!cmd.interruptible) return await cmd.run(parsed, { signal: opts.signal ?? new AbortController().signal, dist, args });
      const interrupt = onInterrupt(opts.signal);
      try {
        return await cmd.run(parsed, { signal: interrupt.signal, dist, args });
      } finally {
        interrupt.dispose();
      }
    } finally {
      dist.destroy();
      restoreConsole();
      setDefaultDevice(undefined); // an in-process caller's next command starts from S2S_DEVICE again
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    if (process.env.S2S_DEBUG) console.error(err.stack);
    const label = rankLabel;
    rankLabel = '';
    if (e instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`s2s${label}: ${e instanceof UsageError ? err.message : shortParseError(err.message)}\n(run \`${helpHint}\` for usage)`);
      return 2;
    }
    console.error(`s2s${label}: ${err.message}`);
    return 1;
  }
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!);
if (isEntry) process.exitCode = await main(process.argv.slice(2));
