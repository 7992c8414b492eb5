// Why a response lost reward: its token scores, the first place the seq2seq reward model would have
// written something else, and the model's own rewrite -- rendered for a terminal or a web page.
import { type Completion, type Model, type Prompt, type Template, type Tokenizer, encodeResponse } from '@s2s/core';

import { type TokenScoreConfig, extractRewards } from './extract.js';
import { decodeGenerated } from './generated.js';
import { rewrite } from './seq2seq.js';

export interface Explanation {
  /** text, or (chat mode) the conversation before the response */
  prompt: Prompt;
  /** the response's tokens, as ids and as text */
  ids: number[];
  tokens: string[];
  /** one score per token (+1 / -1 / 0 under the default rule) */
  scores: number[];
  /** index of the first token the reward model would not have written, or -1 */
  firstDivergence: number;
  /** what the reward model would have written at each position */
  predicted: string[];
  /** the reward model's greedy rewrite of the whole response */
  correction: string;
  correctionIds: number[];
}

/** A prompt as one line of text: a conversation as its turns, "role: content", one after another. */
export function promptText(prompt: Prompt): string {
  return typeof prompt === 'string' ? prompt : prompt.map((m) => `${m.role}: ${m.content}`).join(' | ');
}

/**
 * The seq2seq reward model's view of one response: its token scores, where it first diverges, and
 * its greedy rewrite. `response` is token ids as the policy wrote them, or text (in chat mode an
 * assistant turn) read as a finished response: encodeResponse's ids, with EOS or end-of-turn.
 */
export async function explain(
  rm: Model,
  tok: Tokenizer,
  tpl: Template,
  prompt: Prompt,
  response: Completion | readonly number[],
  opts: { config?: Partial<TokenScoreConfig> } = {},
): Promise<Explanation> {
  const isIds = (r: Completion | readonly number[]): r is readonly number[] => typeof r !== 'string' && r.every((x) => typeof x === 'number');
  const ids = isIds(response) ? [...response] : encodeResponse(tok, tpl, prompt, response);
  const [r] = await extractRewards(rm, tok, tpl, [{ prompt, response: ids }], { config: opts.config });
  const [correctionIds] = await rewrite(rm, tok, tpl, [{ prompt, response: ids }]);
  // an id past the tokenizer's (a padded vocabulary's, which the model may predict) is shown by its number
  const piece = (id: number) => (id < tok.vocabSize && tok.idToToken(id) !== undefined ? tok.decode([id]) : `<id ${id}>`);
  return {
    prompt,
    ids,
    tokens: ids.map(piece),
    scores: r.scores,
    firstDivergence: r.firstDivergence,
    predicted: r.argmax.map(piece),
    correction: decodeGenerated(tok, correctionIds, { skipSpecialTokens: true }),
    correctionIds,
  };
}

const ANSI = { green: '\x1b[42;30m', red: '\x1b[41;97m', dim: '\x1b[2m', bold: '\x1b[1m', reset: '\x1b[0m' };

/** Tokens coloured by score (green +, red -, grey 0), then the first divergence and the rewrite. */
export function renderExplanation(e: Explanation, opts: { color?: boolean } = {}): string {
  const color = opts.color ?? true;
  const paint = (s: string, code: string) => (color ? `${code}${s}${ANSI.reset}` : s);
  const shown = e.tokens.map((t, i) => {
    const text = t.trim() === '' ? JSON.stringify(t) : t.trim();
    const s = e.scores[i];
    if (color) return paint(text, s > 0 ? ANSI.green : s < 0 ? ANSI.red : ANSI.dim);
    return `${text}[${s > 0 ? '+' : ''}${s}]`;
  });
  const total = e.scores.reduce((a, b) => a + b, 0);
  const lines = [`${paint('response', ANSI.bold)}   ${shown.join(' ')}`, `${paint('score', ANSI.bold)}      ${total} over ${e.scores.length} tokens`];
  if (e.firstDivergence >= 0) {
    const k = e.firstDivergence;
    lines.push(
      `${paint('diverges', ANSI.bold)}   at token ${k + 1}: ${JSON.stringify(e.tokens[k].trim())} where the reward model would write ${JSON.stringify(e.predicted[k].trim())}`,
    );
  } else lines.push(`${paint('diverges', ANSI.bold)}   nowhere: the reward model would write this response itself`);
  lines.push(`${paint('rewrite', ANSI.bold)}    ${e.correction}`);
  return lines.join('\n');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The same view as a self-contained HTML fragment (inline styles, no scripts). */
export function renderExplanationHtml(e: Explanation): string {
  const bg = (s: number) => (s > 0 ? '#c8f0c8' : s < 0 ? '#f6c0c0' : '#eeeeee');
  const spans = e.tokens
    .map((t, i) => {
      const title = `score ${e.scores[i]}; the reward model would write ${JSON.stringify(e.predicted[i])}`;
      return `<span style="background:${bg(e.scores[i])};padding:1px 3px;margin:1px;border-radius:3px" title="${escapeHtml(title)}">${escapeHtml(t.trim() || t)}</span>`;
    })
    .join('');
  return (
    `<div class="s2s-explanation" style="font-family:ui-monospace,monospace;line-height:1.9">` +
    `<div style="color:#555">${escapeHtml(promptText(e.prompt))}</div>` +
    `<div>${spans}</div>` +
    `<div style="color:#333">rewrite: <em>${escapeHtml(e.correction)}</em></div></div>`
  );
}
