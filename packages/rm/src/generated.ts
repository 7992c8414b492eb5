// What a model generates, read back: the ids a response ends on (the template's stop tokens and the
// model's generation_config eos ids) and its text, with ids the tokenizer has no token for dropped.
import { type Model, type Template, type Tokenizer, checkpointSource, eosTokenIds, stopTokenIds } from '@s2s/core';

/**
 * The ids that end a response `model` generates, for Model.generate's `eos`: the template's
 * (stopTokenIds: in chat mode its end-of-turn, then the tokenizer's EOS), then those of the
 * generation_config.json (else config.json) the model was loaded from or cloned from one loaded,
 * as transformers' generate() stops on them (Qwen2.5's <|endoftext|> beside <|im_end|>, Llama
 * 3.2's three); each once.
 */
export function generationStopIds(model: Model, tok: Tokenizer, tpl: Template): number[] {
  const source = checkpointSource(model);
  return [...new Set([...stopTokenIds(tok, tpl), ...eosTokenIds(source?.generationConfig, source?.hfConfig)])];
}

export interface DecodeGeneratedOptions {
  skipSpecialTokens?: boolean;
  /** called with the ids dropped (default: a warning on stderr, once per tokenizer) */
  onDropped?: (ids: number[]) => void;
}

const warned = new WeakSet<Tokenizer>();

function warnOnce(tok: Tokenizer, ids: number[]): void {
  if (warned.has(tok)) return;
  warned.add(tok);
  console.error(
    `warning: the model generated token id ${ids[0]}, which the tokenizer (${tok.source}, ${tok.vocabSize} ids) has no token for ` +
      `(its embedding is padded past the vocabulary); such ids are left out of the text, as transformers' decode leaves them out`,
  );
}

/**
 * The text of generated token ids. A model whose embedding has more rows than its tokenizer has ids
 * (Qwen2.5 pads 151665 ids to 151936 rows) can sample an id no token has, which Tokenizer.decode
 * refuses. We drop such ids, as transformers' decode does (the Rust tokenizer skips an id it has no
 * token for), rather than fail: the response's ids, with which rewards and log-probs are computed,
 * keep them; only its text lacks them.
 */
export function decodeGenerated(tok: Tokenizer, ids: readonly number[], opts: DecodeGeneratedOptions = {}): string {
  const known = (id: number) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize && tok.idToToken(id) !== undefined;
  let kept: readonly number[] = ids;
  if (!ids.every(known)) {
    const dropped = ids.filter((id) => !known(id));
    kept = ids.filter(known);
    (opts.onDropped ?? ((d) => warnOnce(tok, d)))(dropped);
  }
  return tok.decode(kept, { skipSpecialTokens: opts.skipSpecialTokens });
}
