// `s2s launch`: starts the ranks of a data-parallel run on this machine, as torchrun does: each
// child gets WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (so a
// cluster scheduler can start the ranks itself instead, with the same variables), and its share of
// the cores. When a rank fails, the others are given a moment to report, then stopped; the
// launcher exits with the first failure's status, naming the rank.
import { type ChildProcess, spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_DIST_TIMEOUT_S, freeTcpPort } from '@s2s/core';

import { defineCommand } from '../command.js';
import { type OptionSchema, UsageError, need } from '../options.js';

const options = {
  nprocPerNode: { type: 'int', min: 1, max: 1024, required: true, group: 'ranks', help: 'ranks to start on this machine' },
  nnodes: { type: 'int', min: 1, max: 1 << 16, default: 1, group: 'ranks', help: 'machines in the run (each runs s2s launch with its --node-rank)' },
  nodeRank: { type: 'int', min: 0, default: 0, group: 'ranks', help: "this machine's place among them (0 serves the rendezvous)" },
  masterAddr: { type: 'string', arg: 'HOST', default: '127.0.0.1', group: 'ranks', help: 'the address of node 0, where the ranks meet' },
  masterPort: {
    type: 'int',
    min: 0,
    max: 65535,
    default: 29500,
    group: 'ranks',
    help: 'the TCP port on node 0 where the ranks meet (0: a free one, on a single machine)',
  },
  timeout: {
    type: 'float',
    min: 0,
    exclusiveMin: true,
    default: DEFAULT_DIST_TIMEOUT_S,
    group: 'ranks',
    help: 'seconds a rank waits for the others (to join, and in each collective) before it fails (S2S_DIST_TIMEOUT)',
  },
  grace: { type: 'float', min: 0, default: 5, group: 'ranks', help: 'seconds the other ranks get to report after one fails, before they are stopped' },
} as const satisfies OptionSchema;

/** How to run this CLI again in a child: the same Node, and tsx when running from the sources. */
function cliInvocation(): string[] {
  const self = fileURLToPath(import.meta.url);
  const ext = path.extname(self);
  const main = path.join(path.dirname(self), '..', `main${ext}`);
  return ext === '.ts' ? ['--conditions=source', '--import', 'tsx', main] : [main];
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with status ${code}`;
}

export const launchCommand = defineCommand({
  name: 'launch',
  summary: 'run a training command data parallel: N ranks on this machine (torchrun conventions)',
  description: `Starts --nproc-per-node ranks of a command on this machine, data parallel: each rank trains on its
shard of every global batch (the per-rank --batch-size times the number of ranks), gradients are
averaged over the ranks with Gloo before each step, and rank 0 writes checkpoints and logs. The
command after \`--\` is an s2s command (sft, rm train, ppo) or any program (\`node my-script.mjs\`,
which uses @s2s/core's Distributed.fromEnv()). Each rank gets WORLD_SIZE, RANK, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and, unless set, OMP_NUM_THREADS / S2S_NUM_THREADS
(the machine's cores divided among its ranks). On several machines, run the same launch on each
with --nnodes, its --node-rank and node 0's --master-addr (set GLOO_SOCKET_IFNAME to the network
interface if the machines have several). If a rank fails, the others stop too, within --timeout.
Ctrl-C reaches every rank: they stop together with a checkpoint.`,
  examples: [
    's2s launch --nproc-per-node 2 -- s2s sft --data data/summarize/sft.jsonl --template testbed --out runs/sft',
    's2s launch --nproc-per-node 2 -- s2s ppo --reward token --policy runs/sft/final --reward-model runs/s2s-rm/final --prompts p.jsonl --out runs/ppo-t',
    's2s launch --nnodes 2 --node-rank 1 --nproc-per-node 8 --master-addr 10.0.0.1 -- s2s sft ...',
  ],
  options,
  passThrough: true,
  async run(parsed, ctx) {
    const o = parsed.values;
    const nproc = need(o.nprocPerNode, 'nprocPerNode', 'N');
    const cmd = ctx.args ?? [];
    if (cmd.length === 0)
      throw new UsageError('the command to run goes after `--`: s2s launch --nproc-per-node 2 -- s2s sft --data ... --out ...');
    if (o.nodeRank >= o.nnodes) throw new UsageError(`--node-rank ${o.nodeRank} is not below --nnodes ${o.nnodes}`);
    if (o.masterPort === 0 && o.nnodes > 1) throw new UsageError('--master-port 0 (a free port) is for a single machine: with --nnodes > 1 every node needs the same port');
    const port = o.masterPort === 0 ? await freeTcpPort() : o.masterPort;
    const [program, args] = cmd[0] === 's2s' ? [process.execPath, [...cliInvocation(), ...cmd.slice(1)]] : [cmd[0], cmd.slice(1)];
    const world = o.nnodes * nproc;
    const threads = String(Math.max(1, Math.floor(os.availableParallelism() / nproc)));
    console.error(
      `s2s launch: ${nproc} rank${nproc > 1 ? 's' : ''} on this machine (node ${o.nodeRank} of ${o.nnodes}, world size ${world}), ` +
        `meeting at ${o.masterAddr}:${port}`,
    );

    const children: ChildProcess[] = [];
    const exits: Array<Promise<{ rank: number; code: number | null; signal: NodeJS.Signals | null }>> = [];
    for (let local = 0; local < nproc; local++) {
      const rank = o.nodeRank * nproc + local;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        WORLD_SIZE: String(world),
        RANK: String(rank),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(nproc),
        MASTER_ADDR: o.masterAddr,
        MASTER_PORT: String(port),
        S2S_DIST_TIMEOUT: String(o.timeout),
        OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? threads,
        S2S_NUM_THREADS: process.env.S2S_NUM_THREADS ?? process.env.OMP_NUM_THREADS ?? threads,
      };
      // its own process group: Ctrl-C reaches the launcher, which passes it on once to every rank
      const child = spawn(program, args, { env, stdio: 'inherit', detached: true });
      children.push(child);
      exits.push(
        new Promise((resolve) => {
          child.on('error', (e) => {
            console.error(`s2s launch: rank ${rank} could not start ${program}: ${e.message}`);
            resolve({ rank, code: 127, signal: null });
          });
          child.on('exit', (code, signal) => resolve({ rank, code, signal }));
        }),
      );
    }
    const running = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
    const forward = (sig: NodeJS.Signals) => () => {
      for (const c of running()) c.kill(sig);
    };
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);

    let failure: { rank: number; code: number | null; signal: NodeJS.Signals | null } | undefined;
    let stopTimer: NodeJS.Timeout | undefined;
    try {
      await Promise.all(
        exits.map((p) =>
          p.then((e) => {
            if ((e.code === 0 && !e.signal) || failure) return;
            failure = e;
            if (running().length === 0) return;
            console.error(
              `s2s launch: rank ${e.rank} ${describeExit(e.code, e.signal)}; stopping the other ranks` +
                (o.grace > 0 ? ` in ${o.grace} s unless they end first` : ''),
            );
            stopTimer = setTimeout(() => {
              for (const c of running()) c.kill('SIGTERM');
              stopTimer = setTimeout(() => running().forEach((c) => c.kill('SIGKILL')), 10_000);
            }, o.grace * 1000);
          }),
        ),
      );
    } finally {
      clearTimeout(stopTimer);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    }
    const results = await Promise.all(exits);
    if (!failure) {
      console.error(`s2s launch: all ${results.length} ranks finished`);
      return 0;
    }
    const f = failure as { rank: number; code: number | null; signal: NodeJS.Signals | null };
    console.error(`s2s launch: rank ${f.rank} ${describeExit(f.code, f.signal)} (the first rank to fail)`);
    // a stopped run (every rank interrupted and checkpointed) keeps 130, as a single process does
    return f.code ?? 128 + (os.constants.signals[f.signal!] ?? 0);
  },
});
