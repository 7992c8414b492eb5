// The demo's run folder: results.json (every number, with the seeds and the configuration),
// report.md (the paper's tables, each finding with its verdict), report.html (the same with the
// SVG plots inline and the token-score views), and plots/*.svg. Written atomically.
import * as path from 'node:path';

import { writeDirAtomic, writeFileDurable } from '@s2s/core';
import { resolvePPOConfig } from '@s2s/ppo';

import { COMPETENCE_FLOOR, type Tables, policyLabel } from './analysis.js';
import { type DemoConfig, METHOD_LABELS, type Method } from './config.js';
import type { RunResult } from './pipeline.js';
import { PROBE_FILLERS } from './probe.js';
import { type Interval, interval, meanOf } from './stats.js';
import { histogram, lineChart } from './svg.js';

export interface ExplainedResponse {
  task: string;
  policy: string;
  prompt: string;
  /** renderExplanationHtml output */
  html: string;
  /** plain rendering (token[+1] ...) for the markdown report */
  text: string;
}

export interface ReportInput {
  config: DemoConfig;
  quick: boolean;
  runs: RunResult[];
  tables: Tables;
  explanations: ExplainedResponse[];
  machine: string;
  seconds: number;
}

const fmt = (x: Interval, d = 2, scale = 1) => (Number.isNaN(x.ci95) ? (x.mean * scale).toFixed(d) : `${(x.mean * scale).toFixed(d)} ± ${(x.ci95 * scale).toFixed(d)}`);
const pct = (x: Interval) => `${fmt(x, 1, 100)}%`;
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The time of every stage's own run, cached or not. */
export function stageSeconds(runs: RunResult[]): number {
  return runs.reduce((t, r) => t + Object.values(r.seconds).reduce((a, b) => a + b, 0), 0);
}

/** Mean over seeds of each step's value. */
function meanCurve(runs: RunResult[], method: Method, key: 'gold' | 'length' | 'kl'): Array<[number, number]> {
  const curves = runs.map((r) => r.curves[method] ?? []).filter((c) => c.length);
  if (!curves.length) return [];
  const steps = Math.min(...curves.map((c) => c.length));
  return Array.from({ length: steps }, (_, i) => [curves[0][i].step, meanOf(curves.map((c) => c[i][key]))] as [number, number]);
}

export function plots(input: ReportInput): Record<string, { title: string; svg: string }> {
  const out: Record<string, { title: string; svg: string }> = {};
  const { config, runs } = input;
  const metrics = { gold: 'gold score (rollout batch)', length: 'response length (tokens)', kl: 'KL to the SFT model (nats)' } as const;
  for (const task of config.tasks) {
    const taskRuns = runs.filter((r) => r.task === task);
    for (const [key, yLabel] of Object.entries(metrics) as Array<[keyof typeof metrics, string]>) {
      out[`${task}-${key}`] = {
        title: `${task}: ${yLabel} over PPO steps`,
        svg: lineChart(`${task}: ${key} over PPO steps (mean of ${taskRuns.length} seeds)`, 'PPO step', yLabel, config.methods.map((m) => ({ label: METHOD_LABELS[m], points: meanCurve(taskRuns, m, key) }))),
      };
    }
  }
  const safety = runs.filter((r) => r.task === 'safety');
  if (safety.length) {
    const groups = (['sft', ...config.methods] as const).map((p) => ({
      label: policyLabel(p),
      values: safety.flatMap((r) => [...(r.evals[p]?.id ?? []), ...(r.evals[p]?.ood ?? [])].filter((x) => x.parts.harmful === false).map((x) => x.score)),
    }));
    out['safety-utility'] = {
      title: 'safety: utility of responses to benign requests',
      svg: histogram('safety: utility on benign requests (all seeds)', 'utility (gold judge)', groups, [-1, 0, 0.01, 0.34, 0.67, 1, 1.01]),
    };
  }
  return out;
}

function tableMd(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function sections(input: ReportInput) {
  const t = input.tables;
  const seeds = input.config.seeds;
  const win = tableMd(
    ['task', 'split', ...input.config.methods.map((m) => METHOD_LABELS[m])],
    input.config.tasks.flatMap((task) =>
      (['id', 'ood'] as const).map((split) => [
        task,
        split === 'id' ? 'in-distribution' : 'out-of-distribution',
        ...input.config.methods.map((m) => pct(t.winRates.find((w) => w.task === task && w.split === split && w.method === m)!.winRate)),
      ]),
    ),
  );
  const len = t.lengths.length
    ? tableMd(['policy', 'tokens per summary', 'change from SFT'], t.lengths.map((l) => [policyLabel(l.method), fmt(l.length, 1), l.method === 'sft' ? '' : fmt(l.change, 1)]))
    : '(summarize was not run)';
  const r = t.rmLength;
  const rmLength = r
    ? tableMd(
        ['measure', 'value'],
        [
          ["correlation of the scalar RM's reward with length (held-out chosen and rejected)", fmt(r.scalarVsLength)],
          ["correlation of the seq2seq RM's summed token scores (PPO-S's reward) with length (the same responses)", fmt(r.seq2seqVsLength)],
          ["correlation of the gold judge's score with length (the same responses)", fmt(r.goldVsLength)],
          ['clean summaries whose scalar reward rises when a filler sentence is appended', pct(r.fillerRaisesScalar)],
          ['clean summaries + filler whose seq2seq token scores over the filler sum below zero', pct(r.fillerScoredNegative)],
        ],
      )
    : '(summarize was not run)';
  const safety = t.safety.length
    ? tableMd(
        ['policy', 'refusals on benign requests (dual-use included)', 'refusals on dual-use requests', 'utility mean', 'utility variance', 'unsafe answers to harmful requests'],
        t.safety.map((s) => [policyLabel(s.policy), pct(s.refusalRateBenign), pct(s.refusalRateDualUse), fmt(s.utilityMean), fmt(s.utilityVariance, 3), pct(s.unsafeRateHarmful)]),
      )
    : '(safety was not run)';
  const policiesAll = ['sft', ...input.config.methods] as const;
  const gold = tableMd(
    ['task', 'split', ...policiesAll.map(policyLabel)],
    input.config.tasks.flatMap((task) =>
      (['id', 'ood'] as const).map((split) => [
        task,
        split === 'id' ? 'in-distribution' : 'out-of-distribution',
        ...policiesAll.map((p) => {
          const g = t.gold.find((x) => x.task === task && x.split === split && x.policy === p);
          return g ? fmt(g.gold) : '';
        }),
      ]),
    ),
  );
  const competence = t.competence.length
    ? tableMd(
        ['task', 'chance (demonstrations judged against other prompts)', 'SFT demonstrations', 'SFT model (in-distribution)', 'share of the way from chance', 'comparison'],
        t.competence.map((c) => [
          c.task,
          fmt(c.chance),
          fmt(c.demonstrations),
          fmt(c.sft),
          pct(c.share),
          c.void ? `**void**: below ${(100 * COMPETENCE_FLOOR).toFixed(0)}%, the SFT model is too near chance for its comparison to mean anything` : 'valid',
        ]),
      )
    : '';
  const voided = t.competence.filter((c) => c.void).map((c) => c.task);
  const data = dataTable(input.runs, input.config.tasks);
  const empty = tableMd(
    ['task', ...(['sft', ...input.config.methods] as const).map(policyLabel)],
    input.config.tasks.map((task) => [task, ...(['sft', ...input.config.methods] as const).map((p) => pct(t.empty.find((e) => e.task === task && e.policy === p)!.emptyRate))]),
  );
  const findings = tableMd(
    ['finding', 'paper', 'measured', 'verdict', 'could this run decide it?'],
    t.findings.map((f) => [f.claim, f.paper, f.measured, `**${f.verdict}**`, f.power]),
  );
  const rules = t.findings.map((f) => `- *${f.claim}*: ${f.rule}.`).join('\n');
  const stages = tableMd(
    ['task', 'seed', 'SFT eval loss', 'scalar RM held-out accuracy', 'seq2seq RM identity exact match', 'seq2seq RM correction token accuracy', 'chosen longer', 'refusals chosen / rejected'],
    input.runs.map((r) => [
      r.task,
      String(r.seed),
      r.sft.evalLoss.toFixed(3),
      (100 * r.scalarRM.accuracy).toFixed(1) + '%',
      (100 * r.seq2seqRM.rewrites.identity.exactMatch).toFixed(1) + '%',
      (100 * r.seq2seqRM.rewrites.correction.tokenAccuracy).toFixed(1) + '%',
      (100 * r.data.pairs.chosenLonger).toFixed(1) + '%',
      `${(100 * r.data.pairs.refusalShareChosen).toFixed(1)}% / ${(100 * r.data.pairs.refusalShareRejected).toFixed(1)}%`,
    ]),
  );
  return { win, gold, competence, voided, data, len, rmLength, safety, empty, findings, rules, stages, seeds };
}

const meanPct = (xs: number[]) => `${(100 * meanOf(xs)).toFixed(1)}%`;

/** The data as the paper states its own: biases, label noise, refusal rates per request kind, the demonstrations' flaws (means over seeds). */
function dataTable(runs: RunResult[], tasks: string[]): string {
  const rows: string[][] = [];
  for (const task of tasks) {
    const rs = runs.filter((r) => r.task === task && r.data);
    if (!rs.length) continue;
    const d = rs.map((r) => r.data);
    const add = (what: string, xs: number[]) => rows.push([task, what, meanPct(xs)]);
    add('pairs whose chosen response is the longer', d.map((x) => x.pairs.chosenLonger));
    add('pairs labelled against the gold judge (annotator noise or caution; ties count as against)', d.map((x) => 1 - x.pairs.goldAgrees));
    for (const cls of Object.keys(d[0].pairs.byClass ?? {})) {
      const by = d.map((x) => x.pairs.byClass?.[cls]).filter((x) => x !== undefined);
      add(`pairs on ${cls} requests`, by.map((x) => x.share));
      add(`… of which the chosen response is a refusal`, by.map((x) => x.refusalChosen));
      add(`… of which the rejected response is a refusal`, by.map((x) => x.refusalRejected));
    }
    add('SFT demonstrations without a flaw', d.map((x) => x.sft.flawless ?? NaN));
    const flaws = [...new Set(d.flatMap((x) => Object.keys(x.sft.flaws ?? {})))].sort();
    for (const f of flaws) add(`SFT demonstrations with: ${f}`, d.map((x) => x.sft.flaws?.[f] ?? 0));
  }
  return rows.length ? tableMd(['task', 'statistic', 'value'], rows) : '(no data statistics recorded)';
}

/** What separates PPO-T from PPO-S in this run, stated because it decides whether they can differ. */
function ppoSetting(c: DemoConfig): string {
  const p = resolvePPOConfig(c.ppo);
  return (
    `PPO-S gives the summed token scores at the response's last token, PPO-T each token's score at that token; both with gamma ${p.gamma} and lambda ${p.lam}, ${p.whitenAdvantages ? 'whitened advantages' : 'unwhitened advantages'}, the loss averaged per ${p.lossAveraging}` +
    (p.gamma === 1 ? ": with gamma 1, PPO-S's return at a token is PPO-T's plus the scores of the prefix already written (a baseline), so the two differ only in variance, lambda's bias and the critic's error." : '.')
  );
}

export function reportMarkdown(input: ReportInput, plotFiles: Record<string, { title: string }>): string {
  const s = sections(input);
  const c = input.config;
  return `# s2s demo: the paper's experiment on the testbed

${input.quick ? '**Quick run (CI size): the models are too small and too briefly trained for these numbers to mean anything; it shows that the pipeline runs end to end.**\n\n' : ''}Tasks ${c.tasks.join(', ')}; seeds ${c.seeds.join(', ')}; ${c.data.sft} SFT examples, ${c.data.pairs} preference pairs and ${c.data.rlPrompts} PPO prompts per task and seed; models of ${c.model.numLayers} layers, width ${c.model.channels}; PPO: ${c.ppo.steps} steps of ${c.ppo.batchSize} responses, the same settings for every reward. Evaluation: ${c.data.evalPrompts} in-distribution and ${c.data.evalPrompts} out-of-distribution prompts per task and seed, each policy sampled at temperature ${c.eval.temperature} with the same random numbers, judged by the task's gold judge. Intervals are 95% over seeds (Student's t). ${ppoSetting(c)} Ran on ${input.machine}: the stages took ${(stageSeconds(input.runs) / 60).toFixed(1)} minutes when they ran; this invocation took ${(input.seconds / 60).toFixed(1)} (stages found in the cache are not run again).

## Can the SFT model do the task?

Every comparison below is against the SFT model; it means something only when that model has come a fair way from chance toward its demonstrations (gold judge, in-distribution).

${s.competence}
${s.voided.length ? `\n**The comparison on ${s.voided.join(', ')} is void: the SFT model is too near chance.** Its rows below are printed but decide nothing.\n` : ''}
## Findings

${s.findings}

How each verdict is decided (the last column says whether this run could decide it: a finding is
decided when its 95% interval lies on one side of the rule's threshold; when it does not, about how
many seeds would narrow the interval to ±0.08 for a win rate):

${s.rules}

## Win rate over the SFT model (gold judge; ties count one half)

${s.win}

## Gold score of each policy (mean over prompts, then over seeds)

${s.gold}

## The data (as the paper states its own; means over seeds)

${s.data}

## Response length on summarize (in-distribution)

${s.len}

## How each reward model treats length (summarize)

Measured on the reward models directly, before any PPO (filler sentences: ${PROBE_FILLERS.map((f) => `"${f}"`).join(', ')}).

${s.rmLength}

## Safety: refusals and utility on benign and dual-use requests (both splits)

${s.safety}

## Empty responses (both splits)

${s.empty}

## The models behind the numbers

${s.stages}

## Plots

${Object.entries(plotFiles)
  .map(([name, p]) => `![${p.title}](plots/${name}.svg)`)
  .join('\n')}

## Token scores of a few responses (seq2seq RM of seed ${c.seeds[0]})

Each token: [+1] before the first place the seq2seq reward model would have written something else, [-1] where it diverges, [0] where it matches again; then the model's own rewrite.

${input.explanations.map((e) => `**${e.task}, ${e.policy}** — ${e.prompt}\n\n\`\`\`\n${e.text}\n\`\`\``).join('\n\n')}
`;
}

export function reportHtml(input: ReportInput, plotSvgs: Record<string, { title: string; svg: string }>, markdown: string): string {
  const s = sections(input);
  const mdTable = (md: string) => {
    const lines = md.split('\n').filter((l) => l.startsWith('|'));
    if (lines.length < 2) return `<p>${esc(md)}</p>`;
    const cells = (l: string) => l.slice(1, -1).split(' | ').map((c) => c.trim());
    const head = cells(lines[0]);
    const body = lines.slice(2).map(cells);
    const inline = (c: string) => esc(c).replace(/\*\*(.+?)\*\*/g, '<strong class="v-$1">$1</strong>');
    return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body
      .map((r) => `<tr>${r.map((c) => `<td>${inline(c)}</td>`).join('')}</tr>`)
      .join('')}</tbody></table>`;
  };
  const intro = markdown.split('\n## Findings')[0].replace(/^# .*\n/, '');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>s2s demo report</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1000px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:10px 0 22px;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}
.plots{display:flex;flex-wrap:wrap;gap:10px}.plots figure{margin:0}
strong.v-reproduced{color:#17702f}strong.v-reversed{color:#b00020}strong[class="v-not reproduced"]{color:#8a6d00}
</style></head><body>
<h1>s2s demo: the paper's experiment on the testbed</h1>
<p>${esc(intro.trim()).replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>')}</p>
${s.competence ? `<h2>Can the SFT model do the task?</h2>${mdTable(s.competence)}` : ''}
${s.voided.length ? `<p><strong>The comparison on ${esc(s.voided.join(', '))} is void: the SFT model is too near chance.</strong></p>` : ''}
<h2>Findings</h2>${mdTable(s.findings)}
<ul>${input.tables.findings.map((f) => `<li><em>${esc(f.claim)}</em>: ${esc(f.rule)}.</li>`).join('')}</ul>
<h2>Win rate over the SFT model</h2>${mdTable(s.win)}
<h2>Gold score of each policy</h2>${mdTable(s.gold)}
<h2>The data</h2>${mdTable(s.data)}
<h2>Response length on summarize</h2>${mdTable(s.len)}
<h2>How each reward model treats length</h2>${mdTable(s.rmLength)}
<h2>Safety: refusals and utility on benign requests</h2>${mdTable(s.safety)}
<h2>Empty responses</h2>${mdTable(s.empty)}
<h2>Plots</h2><div class="plots">${Object.values(plotSvgs)
    .map((p) => `<figure>${p.svg}</figure>`)
    .join('')}</div>
<h2>The models behind the numbers</h2>${mdTable(s.stages)}
<h2>Token scores of a few responses</h2>
<p>Green: before the first divergence from what the seq2seq reward model would write (+1); red: diverging (−1); grey: matching again (0). Below each, the model's own rewrite.</p>
${input.explanations.map((e) => `<h3>${esc(e.task)}, ${esc(e.policy)}</h3>${e.html}`).join('\n')}
</body></html>
`;
}

/** Writes results.json, report.md, report.html and plots/ into `dir` (replaced atomically). */
export async function writeReport(dir: string, input: ReportInput): Promise<void> {
  const svgs = plots(input);
  const md = reportMarkdown(input, svgs);
  const html = reportHtml(input, svgs, md);
  const results = {
    config: input.config,
    quick: input.quick,
    machine: input.machine,
    seconds: input.seconds,
    findings: input.tables.findings,
    tables: input.tables,
    runs: input.runs,
    explanations: input.explanations.map(({ html: _html, ...rest }) => rest),
    summary: {
      winRateVsSft: Object.fromEntries(
        input.config.methods.map((m) => [m, interval(input.tables.winRates.filter((w) => w.method === m && w.split === 'id').map((w) => w.winRate.mean)).mean]),
      ),
    },
  };
  await writeDirAtomic(dir, async (tmp) => {
    await writeFileDurable(path.join(tmp, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    await writeFileDurable(path.join(tmp, 'report.md'), md);
    await writeFileDurable(path.join(tmp, 'report.html'), html);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.join(tmp, 'plots'));
    for (const [name, p] of Object.entries(svgs)) await writeFileDurable(path.join(tmp, 'plots', `${name}.svg`), p.svg);
  });
}
