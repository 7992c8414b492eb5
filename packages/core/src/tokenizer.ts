// Tokenizers as Hugging Face saves them (tokenizer.json + tokenizer_config.json + special_tokens_map.json),
// run by @huggingface/tokenizers; plus GPT-2's byte-level BPE and closed-vocabulary word-level builders.
import * as hfTokenizers from '@huggingface/tokenizers';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import * as fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { writeFileAtomic } from './fsutil.js';
import { jsonNestingDepth, MAX_JSON_DEPTH, tooDeep } from './json-depth.js';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
export const SPECIAL_TOKENS_MAP_FILE = 'special_tokens_map.json';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** One entry of tokenizer.json's added_tokens. */
export interface AddedTokenJSON {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/** A parsed tokenizer.json (only the parts this file reads are typed). */
export interface TokenizerJSON {
  version?: string;
  added_tokens?: AddedTokenJSON[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  model: { type?: string; vocab?: Record<string, number> | [string, number][]; unk_token?: string | null; [k: string]: unknown };
  [k: string]: unknown;
}

/** tokenizer_config.json / special_tokens_map.json: free-form objects, as transformers writes them. */
export type TokenizerConfigJSON = Record<string, unknown>;

export interface TokenizerFiles {
  tokenizerConfig?: TokenizerConfigJSON;
  specialTokensMap?: TokenizerConfigJSON;
}

/** The special tokens the trainers need, by transformers' names. */
export const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

/**
 * Special-token text inside data (e.g. "<|endoftext|>" or "<eos>" in a JSONL field): 'encode'
 * makes it the control token (Hugging Face's default), 'literal' encodes it as ordinary
 * characters (transformers' split_special_tokens=True), 'error' refuses the text.
 */
export type SpecialTokensInText = 'encode' | 'literal' | 'error';
export const SPECIAL_TOKENS_IN_TEXT: readonly SpecialTokensInText[] = ['encode', 'literal', 'error'];

export interface EncodeOptions {
  /** what special-token text in `text` becomes (default 'encode') */
  specialTokensInText?: SpecialTokensInText;
}

export interface DecodeOptions {
  /** leave out special tokens (added tokens marked special, e.g. <|endoftext|>) */
  skipSpecialTokens?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

// transformers accepts a special token as a string or as an AddedToken dict ({content, ...}).
function tokenContent(v: unknown, where: string, key: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  throw new TokenizerError(`${where}: ${key} must be a string or an object with a "content" string, got ${JSON.stringify(v)}`);
}

/**
 * The bos/eos/unk/pad tokens as transformers resolves them: special_tokens_map.json overrides
 * tokenizer_config.json, except when tokenizer_config.json has `added_tokens_decoder` (what
 * transformers >= 4.34 saves), where transformers reads only tokenizer_config.json; there the map
 * only fills keys the config leaves unset.
 */
function resolveSpecialTokens(files: TokenizerFiles, source: string): Partial<Record<SpecialTokenKey, string>> {
  const cfg = files.tokenizerConfig ?? {};
  const map = files.specialTokensMap ?? {};
  const configWins = 'added_tokens_decoder' in cfg;
  const out: Partial<Record<SpecialTokenKey, string>> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const fromCfg = tokenContent(cfg[key], path.join(source, TOKENIZER_CONFIG_FILE), key);
    const fromMap = tokenContent(map[key], path.join(source, SPECIAL_TOKENS_MAP_FILE), key);
    const v = configWins ? (fromCfg ?? fromMap) : (fromMap ?? fromCfg);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** Largest token id + 1 over the model's vocabulary and the added tokens. */
function countVocab(json: TokenizerJSON): number {
  let max = -1;
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) max = vocab.length - 1; // Unigram: ids are positions
  else if (vocab) for (const id of Object.values(vocab)) if (id > max) max = id;
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
  return max + 1;
}

// The library's decoder classes, typed here: its .d.ts files re-export them through extensionless
// paths that NodeNext resolution does not follow.
interface LibDecoder {
  decode_chain(tokens: string[]): string[];
}
const { ByteFallbackDecoder, SequenceDecoder } = hfTokenizers as unknown as {
  ByteFallbackDecoder: abstract new (...args: never[]) => LibDecoder;
  SequenceDecoder: abstract new (...args: never[]) => LibDecoder & { decoders: LibDecoder[] };
};

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;
// ignoreBOM: a leading U+FEFF is text to keep, as Rust's String::from_utf8 keeps it (a default TextDecoder drops it).
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The ByteFallback decoder (Llama 2, Mistral, TinyLlama: SentencePiece BPE with byte fallback) as
 * the Rust tokenizers crate, and so transformers, has it: a run of <0xXX> byte tokens that is not
 * valid UTF-8 becomes one U+FFFD per byte of the run (valid characters in it included). The
 * library (@huggingface/tokenizers 0.2.0) decodes the run with a lenient TextDecoder instead: one
 * U+FFFD per invalid sequence (the 2 bytes of a cut 4-byte emoji give "\uFFFD" there,
 * "\uFFFD\uFFFD" in transformers), and a leading byte-order mark dropped. Patched on the
 * instances, in place, through the library's public decoder classes.
 */
function patchByteFallback(decoder: unknown): void {
  if (decoder instanceof SequenceDecoder) for (const d of decoder.decoders) patchByteFallback(d);
  if (!(decoder instanceof ByteFallbackDecoder)) return;
  decoder.decode_chain = (tokens: string[]): string[] => {
    const out: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length === 0) return;
      try {
        out.push(utf8Strict.decode(Uint8Array.from(bytes)));
      } catch {
        for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
      }
      bytes = [];
    };
    for (const t of tokens) {
      if (t.length === 6 && BYTE_TOKEN.test(t)) bytes.push(parseInt(t.slice(3, 5), 16));
      else {
        flush();
        out.push(t);
      }
    }
    flush();
    return out;
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Llama 2-style tokenizer.json (SentencePiece BPE: a normalizer that prepends "▁" and turns spaces
 * into "▁", no pre-tokenizer) hands the whole text to BPE as one word; the library's BPE takes
 * ~25 µs a character on such a word (3.4 s for 120 KB) and caches nothing. Where no merge joins a
 * piece ending in another character to one starting with "▁" (checked on the merges), cutting the
 * normalized text before each "▁" that follows another character changes no token, so this
 * pre-tokenizer does that: the same ids, ~20x faster, and repeated words come from the cache.
 */
const METASPACE_SPLIT = { type: 'Split', pattern: { Regex: '\u2581*[^\u2581]+|\u2581+' }, behavior: 'Isolated', invert: false };

function splitsAtMetaspace(json: { normalizer?: unknown; pre_tokenizer?: unknown; model: Record<string, unknown> }): boolean {
  const { normalizer, model } = json;
  if (json.pre_tokenizer !== null && json.pre_tokenizer !== undefined) return false;
  if (model.type !== 'BPE' || !Array.isArray(model.merges)) return false;
  if (!isRecord(normalizer) || normalizer.type !== 'Sequence' || !Array.isArray(normalizer.normalizers)) return false;
  const parts = normalizer.normalizers as unknown[];
  const prepend = parts.some((n) => isRecord(n) && n.type === 'Prepend' && n.prepend === '\u2581');
  const replace = parts.some((n) => isRecord(n) && n.type === 'Replace' && isRecord(n.pattern) && n.pattern.String === ' ' && n.content === '\u2581');
  if (!prepend || !replace || parts.length !== 2) return false;
  for (const m of model.merges as unknown[]) {
    const [a, b] = typeof m === 'string' ? m.split(' ', 2) : Array.isArray(m) ? (m as string[]) : [];
    if (typeof a !== 'string' || typeof b !== 'string') return false;
    if (!a.endsWith('\u2581') && b.startsWith('\u2581')) return false;
  }
  return true;
}

const isTokenId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * The models of the Rust tokenizers crate. A tokenizer.json without "type" is read by its fields,
 * as the crate does; the library would also read an unknown type so, as some other model.
 */
const MODEL_TYPES = ['BPE', 'WordLevel', 'WordPiece', 'Unigram'];

/**
 * The vocabulary checks the Rust tokenizers crate makes (and @huggingface/tokenizers does not):
 * model.vocab non-empty, every id a non-negative integer naming one token; Unigram's vocab a list
 * of [piece, score] with each piece once; added_tokens each id and content once, and where an
 * added token's content or id is also in model.vocab, the same pair; BPE merges of two tokens of
 * the vocabulary whose join is in it too. Without them encode can emit -5, "7" or an id two
 * tokens share, and BPE silently drops a merge's missing token.
 */
function validateVocabulary(model: Record<string, unknown>, added: readonly AddedTokenJSON[], where: string): void {
  const q = (v: unknown) => JSON.stringify(v);
  const vocab = model.vocab;
  const tokenOf = new Map<number, string>();
  const idOf = new Map<string, number>();
  if (vocab === undefined || vocab === null) throw new TokenizerError(`${where}: model.vocab is missing`);
  if (Array.isArray(vocab)) {
    // Unigram: [piece, score] pairs; a piece's id is its position
    vocab.forEach((entry: unknown, i) => {
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'number' || !Number.isFinite(entry[1]))
        throw new TokenizerError(`${where}: model.vocab[${i}] must be a [piece, score] pair of a string and a finite number, got ${q(entry)}`);
      const prev = idOf.get(entry[0]);
      if (prev !== undefined) throw new TokenizerError(`${where}: model.vocab: the piece ${q(entry[0])} appears twice (ids ${prev} and ${i})`);
      idOf.set(entry[0], i);
      tokenOf.set(i, entry[0]);
    });
  } else if (isObject(vocab)) {
    for (const [token, id] of Object.entries(vocab)) {
      if (!isTokenId(id)) throw new TokenizerError(`${where}: model.vocab: the id of ${q(token)} must be a non-negative integer, got ${q(id)}`);
      const other = tokenOf.get(id);
      if (other !== undefined) throw new TokenizerError(`${where}: model.vocab: id ${id} is given to two tokens, ${q(other)} and ${q(token)}`);
      tokenOf.set(id, token);
      idOf.set(token, id);
    }
  } else throw new TokenizerError(`${where}: model.vocab must be an object (token -> id) or a list of [piece, score], got ${describe(vocab)}`);
  if (idOf.size === 0) throw new TokenizerError(`${where}: model.vocab is empty`);

  const addedId = new Map<string, number>();
  const addedToken = new Map<number, string>();
  for (const t of added) {
    const { id, content } = t;
    if (addedId.has(content) && addedId.get(content) !== id)
      throw new TokenizerError(`${where}: added_tokens: ${q(content)} appears twice, with ids ${addedId.get(content)} and ${id}`);
    if (addedToken.has(id) && addedToken.get(id) !== content)
      throw new TokenizerError(`${where}: added_tokens: id ${id} is given to two tokens, ${q(addedToken.get(id))} and ${q(content)}`);
    addedId.set(content, id);
    addedToken.set(id, content);
    const inVocab = idOf.get(content);
    if (inVocab !== undefined && inVocab !== id)
      throw new TokenizerError(`${where}: added token ${q(content)} has id ${id} but model.vocab gives it id ${inVocab}`);
    const vocabToken = tokenOf.get(id);
    if (vocabToken !== undefined && vocabToken !== content)
      throw new TokenizerError(`${where}: added token ${q(content)} has id ${id}, which model.vocab gives to ${q(vocabToken)}`);
  }

  if (model.type === 'BPE' || (model.type === undefined && model.merges !== undefined)) {
    const merges = model.merges ?? [];
    if (!Array.isArray(merges)) throw new TokenizerError(`${where}: model.merges must be a list, got ${describe(merges)}`);
    const prefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '';
    merges.forEach((m: unknown, i) => {
      const pair = typeof m === 'string' ? m.split(' ') : m;
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string')
        throw new TokenizerError(`${where}: model.merges[${i}] must be two tokens ("a b" or ["a", "b"]), got ${q(m)}`);
      const [a, b] = pair as [string, string];
      const joined = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
      for (const tok of [a, b, joined])
        if (!idOf.has(tok)) throw new TokenizerError(`${where}: model.merges[${i}] ${q(m)}: the token ${q(tok)} is not in model.vocab`);
    });
  }
}

export class Tokenizer {
  /** where it came from (a directory or a name), for error messages */
  readonly source: string;
  /** number of token ids: largest id + 1, added tokens included */
  readonly vocabSize: number;
  /** the special tokens by transformers' names (bos_token, ...), as resolved from the config files */
  readonly specialTokens: Readonly<Partial<Record<SpecialTokenKey, string>>>;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  /** the id unknown words map to: the configured unk_token, else tokenizer.json's model.unk_token */
  readonly unkId: number | undefined;
  private readonly json: TokenizerJSON;
  private readonly config: TokenizerConfigJSON;
  private readonly hf: HFTokenizer;
  private readonly libConfig: Record<string, unknown>;
  // built on first use: the same tokenizer without the special added tokens, for 'literal'
  private hfLiteral: HFTokenizer | undefined;
  /** the special added tokens' texts, longest first */
  readonly specialTokenStrings: readonly string[];
  // transformers >= 4.45 defaults to false; true would turn "a ." into "a." and break decode(encode(s)) === s.
  private readonly cleanUpSpaces: boolean;

  private constructor(json: TokenizerJSON, files: TokenizerFiles, source: string) {
    this.source = source;
    this.json = json;
    this.config = files.tokenizerConfig ?? {};
    this.specialTokens = Object.freeze(resolveSpecialTokens(files, source));
    this.cleanUpSpaces = this.config.clean_up_tokenization_spaces === true;
    // The library requires these keys to be present (null when unused), as every saved file has them.
    const complete = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json, added_tokens: json.added_tokens ?? [] };
    if (splitsAtMetaspace(complete)) complete.pre_tokenizer = METASPACE_SPLIT;
    // It reads special tokens from its config argument (WordLevel's unk among them); give it the resolved ones.
    const libConfig = { ...this.config, ...this.specialTokens, clean_up_tokenization_spaces: this.cleanUpSpaces };
    this.libConfig = libConfig;
    try {
      this.hf = new HFTokenizer(complete, libConfig);
    } catch (e) {
      throw new TokenizerError(`${path.join(source, TOKENIZER_FILE)}: cannot build the tokenizer (${(e as Error).message})`);
    }
    patchByteFallback(this.hf.decoder);
    this.vocabSize = countVocab(json);

    const idOf = (key: SpecialTokenKey): number | undefined => {
      const tok = this.specialTokens[key];
      if (tok === undefined) return undefined;
      const id = this.hf.token_to_id(tok);
      if (id === undefined)
        throw new TokenizerError(`${source}: ${key} ${JSON.stringify(tok)} is not in the vocabulary of ${TOKENIZER_FILE}`);
      return id;
    };
    this.bosId = idOf('bos_token');
    this.eosId = idOf('eos_token');
    this.padId = idOf('pad_token');
    let unk = idOf('unk_token');
    const modelUnk = json.model.unk_token;
    if (unk === undefined && typeof modelUnk === 'string') unk = this.hf.token_to_id(modelUnk);
    this.unkId = unk;
    const specials = new Set((json.added_tokens ?? []).filter((t) => t.special === true && t.content.length > 0).map((t) => t.content));
    this.specialTokenStrings = Object.freeze([...specials].sort((a, b) => b.length - a.length));
  }

  /** The first special token's text found in `text` (the leftmost, longest), or undefined. */
  findSpecialToken(text: string): string | undefined {
    let best: string | undefined;
    let at = Infinity;
    for (const s of this.specialTokenStrings) {
      const i = text.indexOf(s);
      if (i >= 0 && i < at) {
        at = i;
        best = s;
      }
    }
    return best;
  }

  /** 'literal': the tokenizer.json without its special added tokens, so their text is ordinary text. */
  private literalTokenizer(): HFTokenizer {
    if (!this.hfLiteral) {
      const json = this.json;
      const complete = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json, added_tokens: (json.added_tokens ?? []).filter((t) => t.special !== true) };
      if (splitsAtMetaspace(complete)) complete.pre_tokenizer = METASPACE_SPLIT;
      this.hfLiteral = new HFTokenizer(complete, this.libConfig);
    }
    return this.hfLiteral;
  }

  /**
   * A tokenizer from a parsed tokenizer.json and, optionally, parsed tokenizer_config.json and
   * special_tokens_map.json. `source` names it in error messages.
   */
  static fromJSON(tokenizerJson: unknown, files: TokenizerFiles = {}, source = '<tokenizer>'): Tokenizer {
    const where = path.join(source, TOKENIZER_FILE);
    if (!isObject(tokenizerJson)) throw new TokenizerError(`${where}: expected a JSON object, got ${describe(tokenizerJson)}`);
    if (!isObject(tokenizerJson.model)) throw new TokenizerError(`${where}: "model" must be an object, got ${describe(tokenizerJson.model)}`);
    const type = tokenizerJson.model.type;
    if (type !== undefined && !MODEL_TYPES.includes(type as string))
      throw new TokenizerError(`${where}: model.type ${JSON.stringify(type)} is not one of ${MODEL_TYPES.join(', ')}`);
    const added = tokenizerJson.added_tokens;
    if (added !== undefined && added !== null) {
      if (!Array.isArray(added)) throw new TokenizerError(`${where}: "added_tokens" must be an array, got ${describe(added)}`);
      for (const t of added)
        if (!isObject(t) || typeof t.content !== 'string' || !isTokenId(t.id))
          throw new TokenizerError(`${where}: each of "added_tokens" needs a string "content" and a non-negative integer "id", got ${JSON.stringify(t)}`);
    }
    validateVocabulary(tokenizerJson.model, (added ?? []) as AddedTokenJSON[], where);
    for (const [name, obj] of [
      [TOKENIZER_CONFIG_FILE, files.tokenizerConfig],
      [SPECIAL_TOKENS_MAP_FILE, files.specialTokensMap],
    ] as const)
      if (obj !== undefined && !isObject(obj)) throw new TokenizerError(`${path.join(source, name)}: expected a JSON object, got ${describe(obj)}`);
    const json = { ...tokenizerJson, added_tokens: (added ?? []) as AddedTokenJSON[] } as TokenizerJSON;
    return new Tokenizer(json, files, source);
  }

  /** Reads tokenizer.json from `dir`, with tokenizer_config.json and special_tokens_map.json where present. */
  static async load(dir: string): Promise<Tokenizer> {
    const read = async (name: string, required: boolean): Promise<unknown> => {
      const file = path.join(dir, name);
      let text: string;
      try {
        text = await fs.readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        if (required) throw new TokenizerError(`${file} does not exist; a tokenizer directory needs ${TOKENIZER_FILE}`);
        return undefined;
      }
      // the library builds nested normalizers recursively, and files() writes the JSON back
      if (jsonNestingDepth(text) > MAX_JSON_DEPTH) throw new TokenizerError(`${file}: ${tooDeep()}`);
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new TokenizerError(`${file}: not valid JSON (${(e as Error).message})`);
      }
    };
    const [json, tokenizerConfig, specialTokensMap] = await Promise.all([
      read(TOKENIZER_FILE, true),
      read(TOKENIZER_CONFIG_FILE, false),
      read(SPECIAL_TOKENS_MAP_FILE, false),
    ]);
    return Tokenizer.fromJSON(json, { tokenizerConfig: tokenizerConfig as TokenizerConfigJSON, specialTokensMap: specialTokensMap as TokenizerConfigJSON }, dir);
  }

  /**
   * The files that describe this tokenizer, by name, as JSON text: for saveModel's `files` (so a
   * checkpoint carries its tokenizer) or save(). The two config files state the resolved special
   * tokens, so transformers reads back the same ones whichever file it prefers.
   */
  files(): Record<string, string> {
    const specials: Record<string, string> = { ...this.specialTokens };
    const config = {
      // PreTrainedTokenizerFast runs any tokenizer.json, so transformers' AutoTokenizer can load it.
      tokenizer_class: 'PreTrainedTokenizerFast',
      ...this.config,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
      ...specials,
    };
    return {
      [TOKENIZER_FILE]: JSON.stringify(this.json),
      [TOKENIZER_CONFIG_FILE]: JSON.stringify(config, null, 2) + '\n',
      [SPECIAL_TOKENS_MAP_FILE]: JSON.stringify(specials, null, 2) + '\n',
    };
  }

  /**
   * Writes files() into `dir` (created if needed), each file atomically. Other files in `dir` are
   * left alone; to keep a tokenizer with a model, pass files() to saveModel instead.
   */
  async save(dir: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(this.files())) await writeFileAtomic(path.join(dir, name), text);
  }

  /**
   * Token ids of `text`, with no special tokens added (no BOS/EOS: the template adds those).
   * Special tokens written in the text (e.g. "<|endoftext|>") become their ids, as in Hugging
   * Face, unless `specialTokensInText` says otherwise: 'error' throws a TokenizerError naming the
   * token; 'literal' tokenizes the text with the special added tokens left out (transformers'
   * split_special_tokens=True), so "<|endoftext|>" becomes "<", "|", "end", ...; where that still
   * yields a special token's id (a word-level vocabulary whose only entry for the word "<eos>" is
   * the special token itself) the unk id stands for it, and without an unk token it is an error.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: expected a string, got ${describe(text)}`);
    const policy = opts.specialTokensInText ?? 'encode';
    if (!SPECIAL_TOKENS_IN_TEXT.includes(policy))
      throw new TypeError(`encode: specialTokensInText must be one of ${SPECIAL_TOKENS_IN_TEXT.join(', ')}, got ${JSON.stringify(policy)}`);
    let lib = this.hf;
    if (policy !== 'encode') {
      const found = this.findSpecialToken(text);
      if (found !== undefined) {
        if (policy === 'error')
          throw new TokenizerError(`the text contains the special token ${JSON.stringify(found)} of ${this.source} (specialTokensInText: 'error')`);
        lib = this.literalTokenizer();
      }
    }
    const { ids, tokens } = lib.encode(text, { add_special_tokens: false });
    if (lib !== this.hf) {
      const specials = new Set(this.specialTokenStrings);
      for (let i = 0; i < ids.length; i++) {
        if (!specials.has(tokens[i])) continue;
        if (this.unkId === undefined || this.unkId === this.hf.token_to_id(tokens[i]))
          throw new TokenizerError(
            `${this.source}: the special token ${JSON.stringify(tokens[i])} in the text cannot be encoded as ordinary characters (the vocabulary has no other token for it, and no unk token)`,
          );
        ids[i] = this.unkId;
      }
    }
    // @huggingface/tokenizers leaves an unknown WordLevel word as null/undefined instead of the unk id.
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== null && ids[i] !== undefined) continue;
      if (this.unkId === undefined)
        throw new TokenizerError(`${this.source}: unknown word ${JSON.stringify(tokens[i])} is not in the vocabulary and the tokenizer has no unk token`);
      ids[i] = this.unkId;
    }
    return ids;
  }

  /**
   * Whether every string encodes without the unknown token: a byte-level BPE (GPT-2's, Llama 3's,
   * Qwen's) or a BPE with byte fallback (Llama 2's, Mistral's) spells anything in bytes.
   */
  get coversEveryString(): boolean {
    const model = this.json.model as { type?: unknown; byte_fallback?: unknown };
    if (model.byte_fallback === true) return true;
    const hasByteLevel = (x: unknown): boolean => {
      if (x === null || typeof x !== 'object') return false;
      const o = x as { type?: unknown; pretokenizers?: unknown };
      return o.type === 'ByteLevel' || (Array.isArray(o.pretokenizers) && o.pretokenizers.some(hasByteLevel));
    };
    return model.type === 'BPE' && hasByteLevel(this.json.pre_tokenizer);
  }

  /** The pieces of `text` that encode() maps to the unknown token (words a word-level vocabulary lacks), each once, in order. */
  unknownWords(text: string): string[] {
    if (this.unkId === undefined) return [];
    const { ids, tokens } = this.hf.encode(text, { add_special_tokens: false });
    const words = new Set<string>();
    ids.forEach((id: number | null | undefined, i: number) => {
      if (id === null || id === undefined || id === this.unkId) words.add(tokens[i]);
    });
    return [...words];
  }

  /** The text of `ids`; throws on an id outside the vocabulary. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const list = Array.from(ids);
    for (const id of list)
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined)
        throw new RangeError(`token id ${id} is outside the vocabulary of ${this.source} (${this.vocabSize} ids)`);
    if (list.length === 0) return ''; // the library refuses an empty list
    return this.hf.decode(list, { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}

/**
 * Where two tokenizers' vocabularies part, in words (undefined when every id names the same token
 * in both): a model trained with one reads another's ids as different tokens.
 */
export function vocabularyDifference(a: Tokenizer, b: Tokenizer): string | undefined {
  if (a.vocabSize !== b.vocabSize) return `${a.source} has ${a.vocabSize} token ids but ${b.source} has ${b.vocabSize}`;
  for (let id = 0; id < a.vocabSize; id++) {
    const x = a.idToToken(id);
    const y = b.idToToken(id);
    if (x !== y) return `token id ${id} is ${JSON.stringify(x)} in ${a.source} but ${JSON.stringify(y)} in ${b.source}`;
  }
  return undefined;
}

/** Throws unless every token id of `tokenizer` has a row in the model's embedding. */
export function assertTokenizerFitsModel(tokenizer: Tokenizer, modelConfig: { vocabSize: number }): void {
  if (tokenizer.vocabSize > modelConfig.vocabSize)
    throw new TokenizerError(
      `the tokenizer (${tokenizer.source}) has ${tokenizer.vocabSize} token ids but the model's vocabulary has only ${modelConfig.vocabSize} (config vocabSize); ` +
        `ids ${modelConfig.vocabSize}..${tokenizer.vocabSize - 1} would fall outside the embedding`,
    );
}

// ---- GPT-2 ----

export const GPT2_EOS = '<|endoftext|>';
export const GPT2_EOS_ID = 50256;
const GPT2_MERGES = 50000;

interface GPT3TokenizerInstance {
  encodings: Record<string, number>;
  vocab: string;
}

let gpt2Json: TokenizerJSON | undefined;

/**
 * GPT-2's tokenizer.json, laid out as the one on the Hugging Face Hub, built from the vocabulary
 * (token -> id) and merges (BPE ranks) that gpt3-tokenizer ships (OpenAI's r50k, GPT-2's BPE).
 * Built once per process; treat the result as read-only.
 */
export function gpt2TokenizerJSON(): TokenizerJSON {
  if (gpt2Json) return gpt2Json;
  // The data is only reachable through an instance: its (TypeScript-private) fields hold it.
  const require = createRequire(import.meta.url);
  const GPT3Tokenizer = (require('gpt3-tokenizer') as { default: new (o: { type: 'gpt3' }) => GPT3TokenizerInstance }).default;
  const src = new GPT3Tokenizer({ type: 'gpt3' });
  const vocab: Record<string, number> = {};
  // Codex mode adds ids above 50256 to the same shared table; keep GPT-2's only.
  for (const [tok, id] of Object.entries(src.encodings)) if (id <= GPT2_EOS_ID) vocab[tok] = id;
  const lines = src.vocab.split('\n');
  if (!lines[0].startsWith('#version')) throw new TokenizerError('gpt3-tokenizer: its merges text does not start with "#version"; the package layout changed');
  const merges = lines.slice(1).filter((l) => l.length > 0);
  if (Object.keys(vocab).length !== GPT2_EOS_ID + 1 || vocab[GPT2_EOS] !== GPT2_EOS_ID || merges.length !== GPT2_MERGES || merges.some((m) => m.split(' ').length !== 2))
    throw new TokenizerError(`gpt3-tokenizer: expected GPT-2's ${GPT2_EOS_ID + 1} tokens and ${GPT2_MERGES} merges, found ${Object.keys(vocab).length} and ${merges.length}`);
  gpt2Json = byteLevelBpeJSON(vocab, merges, [{ id: GPT2_EOS_ID, content: GPT2_EOS, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }], {
    type: 'ByteLevel',
    add_prefix_space: true,
    trim_offsets: false,
    use_regex: true,
  });
  return gpt2Json;
}

/** A byte-level BPE tokenizer.json in GPT-2's layout (ByteLevel pre-tokenizer and decoder), as Hugging Face writes one. */
export function byteLevelBpeJSON(vocab: Record<string, number>, merges: string[], addedTokens: AddedTokenJSON[], postProcessor: unknown = null): TokenizerJSON {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/** GPT-2's tokenizer_config.json: <|endoftext|> is BOS, EOS and UNK; there is no pad token. */
export function gpt2TokenizerConfig(): TokenizerConfigJSON {
  return {
    tokenizer_class: 'GPT2Tokenizer',
    model_max_length: 1024,
    add_prefix_space: false,
    clean_up_tokenization_spaces: false,
    bos_token: GPT2_EOS,
    eos_token: GPT2_EOS,
    unk_token: GPT2_EOS,
  };
}

let gpt2: Tokenizer | undefined;

/** GPT-2's byte-level BPE tokenizer (50257 ids). One shared instance: building it takes ~0.1 s. */
export function gpt2Tokenizer(): Tokenizer {
  gpt2 ??= Tokenizer.fromJSON(gpt2TokenizerJSON(), { tokenizerConfig: gpt2TokenizerConfig() }, 'gpt2');
  return gpt2;
}

// ---- closed vocabularies ----

export interface WordLevelOptions {
  /** the token unknown words become; added to `specials` if missing; null: none, unknown words throw (default "<unk>") */
  unkToken?: string | null;
}

/**
 * A WordLevel tokenizer.json for a closed vocabulary: text is split on whitespace and each word is
 * one token. Special tokens take ids 0.. in the order given, then the words; the specials are also
 * added tokens, so they are recognised inside text and skipped by decode({skipSpecialTokens}).
 * Decoding joins tokens with single spaces.
 */
export function wordLevelTokenizerJSON(words: readonly string[], specials: readonly string[], opts: WordLevelOptions = {}): TokenizerJSON {
  const unk = opts.unkToken === undefined ? '<unk>' : opts.unkToken;
  const allSpecials = unk !== null && !specials.includes(unk) ? [...specials, unk] : [...specials];
  const vocab: Record<string, number> = Object.create(null);
  const add = (tok: string, what: string) => {
    if (typeof tok !== 'string' || tok.length === 0 || /\s/.test(tok))
      throw new TokenizerError(`wordLevelTokenizerJSON: ${what} ${JSON.stringify(tok)} must be a non-empty string without whitespace`);
    if (tok in vocab) throw new TokenizerError(`wordLevelTokenizerJSON: ${JSON.stringify(tok)} appears twice`);
    vocab[tok] = Object.keys(vocab).length;
  };
  for (const s of allSpecials) add(s, 'special token');
  for (const w of words) add(w, 'word');
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: allSpecials.map((content) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    // WordLevel's unk_token is a required string in the Rust crate; one absent from the vocabulary makes
    // unknown words an error there, as here.
    model: { type: 'WordLevel', vocab: { ...vocab }, unk_token: unk ?? '<unk>' },
  };
}
