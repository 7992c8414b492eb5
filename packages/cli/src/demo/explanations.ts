// The report's token-score views: a few evaluation responses of the first seed, scored token by
// token by that seed's seq2seq reward model, with the model's own rewrite beneath.
import { loadModel, type Template, type Tokenizer } from '@s2s/core';
import { explain, renderExplanation, renderExplanationHtml } from '@s2s/rm';

import { policyLabel } from './analysis.js';
import type { Method } from './config.js';
import type { RunResult } from './pipeline.js';
import type { ExplainedResponse } from './report.js';

export async function explainResponses(runs: RunResult[], tok: Tokenizer, tpl: Template, count: number, methods: readonly Method[]): Promise<ExplainedResponse[]> {
  const out: ExplainedResponse[] = [];
  const policies = (['sft', 'scalar', 'token'] as const).filter((p) => p === 'sft' || methods.includes(p));
  for (const task of [...new Set(runs.map((r) => r.task))]) {
    const run = runs.find((r) => r.task === task)!;
    const rm = await loadModel(run.models.seq2seqRM, { optimizer: false });
    try {
      for (let i = 0; i < count; i++)
        for (const p of policies) {
          const judged = run.evals[p]?.id[i];
          if (!judged) continue;
          const e = await explain(rm, tok, tpl, judged.prompt, judged.response);
          out.push({ task, policy: policyLabel(p), prompt: judged.prompt, html: renderExplanationHtml(e), text: renderExplanation(e, { color: false }) });
        }
    } finally {
      rm.dispose();
    }
  }
  return out;
}
