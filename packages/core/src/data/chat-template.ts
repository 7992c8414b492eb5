// A model's own chat template (tokenizer_config.json's Jinja `chat_template`, or chat_template.jinja),
// read and rendered as transformers' apply_chat_template(tokenize=False) does.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { Environment, Interpreter, Template as JinjaTemplate } from '@huggingface/jinja';

import type { Tokenizer } from '../tokenizer.js';

/** One turn of a conversation, as transformers and TRL write it; other keys (name, tool_calls) reach the template as they are. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

/** tokenizer_config.json's name for the template, and the file newer transformers saves it in. */
export const CHAT_TEMPLATE_KEY = 'chat_template';
export const CHAT_TEMPLATE_FILE = 'chat_template.jinja';

/** The special tokens transformers passes to a template (its special_tokens_map), where the tokenizer has them. */
export type ChatSpecialTokens = Partial<Record<'bos_token' | 'eos_token' | 'unk_token' | 'pad_token', string>>;

/**
 * A chat template and everything its rendering depends on, as plain JSON: saved inside
 * s2s_template.json (Template.chat), so every stage renders with the template its model was
 * trained with, whatever the model folder's tokenizer_config.json says later.
 */
export interface ChatTemplateSpec {
  /** the Jinja source */
  template: string;
  /** the file it was read from (or a name), for messages */
  source: string;
  /** bos_token, eos_token, unk_token, pad_token as the template sees them: the tokenizer's, as transformers passes them */
  specialTokens: ChatSpecialTokens;
  /**
   * The special token that closes an assistant turn as the template renders it ('<|im_end|>',
   * '<|eot_id|>', '</s>'): every response ends with it, and it is the policy's stop token.
   */
  endOfTurn: string;
  /** seq2seq reward model: the user turn that asks for the rewrite (see encodeRewrite) */
  rewriteInstruction: string;
  /**
   * The date strftime_now() reports ('YYYY-MM-DD', or 'YYYY-MM-DDTHH:MM[:SS]'), local time. Absent:
   * the current time, as transformers does (datetime.now()); Llama 3.1/3.2 write it into every
   * system header, so a fixed date keeps prompts the same across days and resumed runs.
   */
  date?: string;
  /** extra template variables, as apply_chat_template's **kwargs (e.g. {date_string: '26 Jul 2024'} for Llama 3.2) */
  variables?: Record<string, unknown>;
}

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

/** The default seq2seq-RM instruction: asks the model to rewrite its last answer, or repeat it when it is right. */
export const DEFAULT_REWRITE_INSTRUCTION = 'Rewrite your previous response so that it is the best possible answer to my request. If it needs no change, repeat it exactly.';

export interface ChatTemplateOptions {
  /** which of several named templates (tokenizer_config.json's list of {name, template}); default "default", as transformers */
  name?: string;
  /** the end-of-turn token, when it cannot be found by rendering (see ChatTemplateSpec.endOfTurn) */
  endOfTurn?: string;
  rewriteInstruction?: string;
  date?: string;
  variables?: Record<string, unknown>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---- rendering ----

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's strftime in the C locale (the names transformers' strftime_now gives on a default system). */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const h12 = date.getHours() % 12 || 12;
  const dayOfYear = Math.round((Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) - Date.UTC(date.getFullYear(), 0, 1)) / 86_400_000) + 1;
  return format.replace(/%(.)/gs, (whole, c: string) => {
    switch (c) {
      case 'Y': return String(date.getFullYear());
      case 'y': return pad(date.getFullYear() % 100);
      case 'm': return pad(date.getMonth() + 1);
      case 'd': return pad(date.getDate());
      case 'e': return String(date.getDate()).padStart(2, ' ');
      case 'b': return MONTHS[date.getMonth()].slice(0, 3);
      case 'B': return MONTHS[date.getMonth()];
      case 'a': return DAYS[date.getDay()].slice(0, 3);
      case 'A': return DAYS[date.getDay()];
      case 'H': return pad(date.getHours());
      case 'I': return pad(h12);
      case 'p': return date.getHours() < 12 ? 'AM' : 'PM';
      case 'M': return pad(date.getMinutes());
      case 'S': return pad(date.getSeconds());
      case 'j': return pad(dayOfYear, 3);
      case '%': return '%';
      default:
        throw new ChatTemplateError(`strftime_now: the format directive ${JSON.stringify(whole)} is not supported`);
    }
  });
}

/** A ChatTemplateSpec.date as a local Date; a malformed one is an error naming it. */
export function parseChatDate(date: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(date);
  const d = m && new Date(+m[1], +m[2] - 1, +m[3], +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0));
  if (!m || !d || d.getMonth() !== +m[2] - 1 || d.getDate() !== +m[3]) throw new ChatTemplateError(`chat template date must be YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], got ${JSON.stringify(date)}`);
  return d;
}

function pyRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new ChatTemplateError('range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

// Parsing is the slow part; a spec is rendered thousands of times.
const compiled = new Map<string, JinjaTemplate>();
function compile(spec: Pick<ChatTemplateSpec, 'template' | 'source'>): JinjaTemplate {
  let t = compiled.get(spec.template);
  if (!t) {
    try {
      t = new JinjaTemplate(spec.template);
    } catch (e) {
      throw new ChatTemplateError(`${spec.source}: the chat template does not parse (${(e as Error).message})`);
    }
    compiled.set(spec.template, t);
  }
  return t;
}

export interface RenderChatOptions {
  /** end with the assistant's header, where the model writes its reply (apply_chat_template's add_generation_prompt) */
  addGenerationPrompt?: boolean;
  /** the time strftime_now() reports when the spec has no fixed date (default: now); one render of a pair shares one */
  now?: Date;
}

/**
 * The conversation as text, as transformers' apply_chat_template(messages, tokenize=False,
 * add_generation_prompt) renders it: the same variables (messages, add_generation_prompt, the
 * special tokens that are set, tools and documents None, raise_exception, strftime_now, the spec's
 * `variables` as **kwargs), Jinja with trim_blocks and lstrip_blocks. Tokenize the result with
 * Tokenizer.encode, which adds no BOS/EOS: the template writes BOS where the model wants one (Llama
 * 3), as transformers' apply_chat_template(tokenize=True) and TRL's conversational path do.
 */
export function renderChat(spec: ChatTemplateSpec, messages: readonly ChatMessage[], opts: RenderChatOptions = {}): string {
  const t = compile(spec);
  const now = spec.date !== undefined ? parseChatDate(spec.date) : (opts.now ?? new Date());
  const globals: Record<string, unknown> = {
    // @huggingface/jinja's own globals, which a fresh Environment lacks
    true: true,
    false: false,
    none: null,
    True: true,
    False: false,
    None: null,
    range: pyRange,
    // transformers' two template functions
    raise_exception: (message: unknown) => {
      throw new ChatTemplateError(`${spec.source}: the chat template refused the conversation: ${String(message)}`);
    },
    strftime_now: (format: string) => strftime(now, String(format)),
    // transformers: {**special_tokens_map, **kwargs}, then its own arguments (tools, documents: None)
    ...spec.specialTokens,
    ...spec.variables,
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    tools: null,
    documents: null,
  };
  const env = new Environment();
  for (const [k, v] of Object.entries(globals)) env.set(k, v);
  try {
    const out = new Interpreter(env).run(t.parsed);
    return String((out as { value: unknown }).value);
  } catch (e) {
    if (e instanceof ChatTemplateError) throw e;
    throw new ChatTemplateError(`${spec.source}: rendering the chat template failed (${(e as Error).message})`);
  }
}

// ---- reading a model's template ----

/**
 * The template transformers would use from a tokenizer_config.json object: `chat_template` as a
 * string, or a list of {name, template} of which "default" (or `name`) is taken. Undefined when it
 * has none.
 */
export function chatTemplateFromConfig(config: Record<string, unknown>, file: string, name?: string): string | undefined {
  const v = config[CHAT_TEMPLATE_KEY];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') {
    if (name !== undefined && name !== 'default') throw new ChatTemplateError(`${file}: has one chat_template, not one named ${JSON.stringify(name)}`);
    return v;
  }
  if (Array.isArray(v)) {
    const named = new Map<string, string>();
    for (const t of v) {
      if (!isObject(t) || typeof t.name !== 'string' || typeof t.template !== 'string')
        throw new ChatTemplateError(`${file}: each entry of chat_template must be {"name": string, "template": string}, got ${JSON.stringify(t)}`);
      named.set(t.name, t.template);
    }
    const want = name ?? 'default';
    const t = named.get(want);
    if (t === undefined)
      throw new ChatTemplateError(
        `${file}: ${name === undefined ? 'has several chat templates and none is named "default"' : `has no chat template named ${JSON.stringify(name)}`}; the names are ${[...named.keys()].map((k) => JSON.stringify(k)).join(', ')}`,
      );
    return t;
  }
  throw new ChatTemplateError(`${file}: chat_template must be a string or a list of {name, template}, got ${typeof v}`);
}

const PROBE_USER = 's2sProbeUserMessage';
/** a stand-in response with no spaces, so templates that trim or strip content leave it whole */
export const RESPONSE_PLACEHOLDER = 's2sResponsePlaceholder';

function isSpecial(tok: Tokenizer, id: number): boolean {
  return tok.decode([id], { skipSpecialTokens: true }) === '' && tok.decode([id]) !== '';
}

/**
 * The token that closes an assistant turn: the first special token the template writes after an
 * assistant message's content.
 */
function findEndOfTurn(tok: Tokenizer, spec: Omit<ChatTemplateSpec, 'endOfTurn'>): string {
  const text = renderChat({ ...spec, endOfTurn: '' }, [
    { role: 'user', content: PROBE_USER },
    { role: 'assistant', content: RESPONSE_PLACEHOLDER },
  ]);
  const at = text.lastIndexOf(RESPONSE_PLACEHOLDER);
  if (at < 0) throw new ChatTemplateError(`${spec.source}: the chat template does not write the assistant's message into the conversation`);
  const after = tok.encode(text.slice(at + RESPONSE_PLACEHOLDER.length));
  const id = after.find((i) => isSpecial(tok, i));
  if (id === undefined)
    throw new ChatTemplateError(
      `${spec.source}: the chat template writes no special token after an assistant message (${JSON.stringify(text.slice(at + RESPONSE_PLACEHOLDER.length))}), so the end of a turn cannot be found; give endOfTurn`,
    );
  return tok.decode([id]);
}

/** The id of the spec's end-of-turn token in `tok`: it must be one token. */
export function endOfTurnId(tok: Tokenizer, spec: ChatTemplateSpec): number {
  const ids = tok.encode(spec.endOfTurn);
  if (ids.length !== 1) throw new ChatTemplateError(`${spec.source}: the end-of-turn ${JSON.stringify(spec.endOfTurn)} is ${ids.length} tokens in ${tok.source}, not one special token`);
  return ids[0];
}

/** A spec checked field by field (as read back from s2s_template.json); errors name the field. */
export function resolveChatTemplateSpec(v: unknown): ChatTemplateSpec {
  if (!isObject(v)) throw new TypeError(`template.chat must be an object, got ${JSON.stringify(v)}`);
  for (const k of ['template', 'source', 'endOfTurn', 'rewriteInstruction'] as const)
    if (typeof v[k] !== 'string') throw new TypeError(`template.chat.${k} must be a string, got ${JSON.stringify(v[k])}`);
  if ((v.endOfTurn as string) === '') throw new TypeError('template.chat.endOfTurn must not be empty');
  if (!isObject(v.specialTokens)) throw new TypeError(`template.chat.specialTokens must be an object, got ${JSON.stringify(v.specialTokens)}`);
  for (const [k, t] of Object.entries(v.specialTokens)) if (typeof t !== 'string') throw new TypeError(`template.chat.specialTokens.${k} must be a string, got ${JSON.stringify(t)}`);
  if (v.date !== undefined) {
    if (typeof v.date !== 'string') throw new TypeError(`template.chat.date must be a string, got ${JSON.stringify(v.date)}`);
    parseChatDate(v.date);
  }
  if (v.variables !== undefined && !isObject(v.variables)) throw new TypeError(`template.chat.variables must be an object, got ${JSON.stringify(v.variables)}`);
  const known = new Set(['template', 'source', 'specialTokens', 'endOfTurn', 'rewriteInstruction', 'date', 'variables']);
  const unknown = Object.keys(v).find((k) => !known.has(k));
  if (unknown !== undefined) throw new TypeError(`template.chat: unknown field ${JSON.stringify(unknown)}`);
  const out: ChatTemplateSpec = {
    template: v.template as string,
    source: v.source as string,
    specialTokens: { ...(v.specialTokens as ChatSpecialTokens) },
    endOfTurn: v.endOfTurn as string,
    rewriteInstruction: v.rewriteInstruction as string,
  };
  if (v.date !== undefined) out.date = v.date as string;
  if (v.variables !== undefined) out.variables = { ...(v.variables as Record<string, unknown>) };
  return out;
}

/**
 * A chat template ready to use with `tok`: compiled once to check it parses, its end-of-turn token
 * found by rendering a probe conversation (or taken from opts.endOfTurn) and checked to be one
 * token of `tok`. `source` names it in errors.
 */
export function createChatTemplate(tok: Tokenizer, template: string, source: string, opts: Omit<ChatTemplateOptions, 'name'> = {}): ChatTemplateSpec {
  const base = {
    template,
    source,
    specialTokens: { ...tok.specialTokens },
    rewriteInstruction: opts.rewriteInstruction ?? DEFAULT_REWRITE_INSTRUCTION,
    ...(opts.date !== undefined ? { date: opts.date } : {}),
    ...(opts.variables !== undefined ? { variables: { ...opts.variables } } : {}),
  };
  if (base.date !== undefined) parseChatDate(base.date);
  compile(base);
  const spec: ChatTemplateSpec = { ...base, endOfTurn: opts.endOfTurn ?? findEndOfTurn(tok, base) };
  endOfTurnId(tok, spec);
  return resolveChatTemplateSpec(spec);
}

/**
 * The chat template of a model or tokenizer folder, as transformers loads it: chat_template.jinja
 * when present (it overrides the config's key, as in transformers), else tokenizer_config.json's
 * chat_template. A folder with neither is an error naming tokenizer_config.json: without the
 * model's template, conversational data has no layout.
 */
export async function loadChatTemplate(dir: string, tok: Tokenizer, opts: ChatTemplateOptions = {}): Promise<ChatTemplateSpec> {
  const configFile = path.join(dir, 'tokenizer_config.json');
  const jinjaFile = path.join(dir, CHAT_TEMPLATE_FILE);
  const read = async (file: string): Promise<string | undefined> => {
    try {
      return await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new ChatTemplateError(`${file}: cannot read it (${(e as Error).message})`);
    }
  };
  // transformers keeps named templates beside it, in additional_chat_templates/<name>.jinja
  const namedFile = opts.name === undefined || opts.name === 'default' ? jinjaFile : path.join(dir, 'additional_chat_templates', `${opts.name}.jinja`);
  const jinja = await read(namedFile);
  if (jinja !== undefined) return createChatTemplate(tok, jinja, namedFile, opts);
  const text = await read(configFile);
  if (text === undefined) throw new ChatTemplateError(`${configFile} does not exist (nor ${jinjaFile}): the model has no chat template, which conversational data needs`);
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new ChatTemplateError(`${configFile}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(config)) throw new ChatTemplateError(`${configFile}: expected a JSON object`);
  const template = chatTemplateFromConfig(config, configFile, opts.name);
  if (template === undefined)
    throw new ChatTemplateError(
      `${configFile} has no chat_template (and there is no ${CHAT_TEMPLATE_FILE} beside it): the model has no chat template, so conversational data cannot be laid out for it; use a model that has one, give a template file, or use plain-text data with the s2s template`,
    );
  return createChatTemplate(tok, template, configFile, opts);
}
