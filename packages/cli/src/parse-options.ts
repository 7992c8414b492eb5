// Reads a command's options from its command line (node's util.parseArgs, strict) and from a
// --config JSON file, in this order of precedence: flags, the config file, defaults.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { type OptionSchema, type OptionValue, UsageError, type Values, camelName, checkValue, flagName } from './options.js';

export type PartialValues = Record<string, OptionValue>;

export interface ParsedOptions<S extends OptionSchema> {
  values: Values<S>;
  /** what the command line and the config file set (no defaults) */
  explicit: PartialValues;
  help: boolean;
}

/** The options every command takes besides its own. */
export const COMMON_FLAGS = {
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function defaults(schema: OptionSchema): PartialValues {
  const out: PartialValues = {};
  for (const [key, spec] of Object.entries(schema)) if (spec.default !== undefined) out[key] = spec.default;
  return out;
}

/** The options of a --config file (or a run's saved config), checked against the schema. */
export async function readConfigFile(schema: OptionSchema, file: string, command: string): Promise<PartialValues> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `config file ${file} does not exist` : `cannot read config file ${file} (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new UsageError(`${file}: a config file must be a JSON object of option names and values`);
  const out: PartialValues = {};
  const from: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json)) {
    const key = name in schema ? name : camelName(name);
    const spec = schema[key];
    if (!spec || (name !== key && flagName(key) !== name))
      throw new UsageError(`${file}: unknown key ${JSON.stringify(name)}; \`s2s ${command} --help\` lists the options`);
    if (key in from) throw new UsageError(`${file}: ${JSON.stringify(from[key])} and ${JSON.stringify(name)} are the same option`);
    from[key] = name;
    if (spec.type === 'string' && spec.optionalValue && raw === false) continue;
    out[key] = checkValue(spec, raw, `${file}: ${JSON.stringify(name)}`, false);
  }
  return out;
}

/**
 * The command line's options, on top of its --config file, on top of the defaults. Unknown flags,
 * stray arguments and bad values are UsageErrors that name them.
 */
export async function parseOptions<S extends OptionSchema>(schema: S, argv: readonly string[], command: string): Promise<ParsedOptions<S>> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { ...COMMON_FLAGS };
  for (const [key, spec] of Object.entries(schema)) options[flagName(key)] = { type: spec.type === 'bool' ? 'boolean' : 'string' };
  // a switch that is on by default needs a way to turn it off: --no-<flag> (node 20's parseArgs has no allowNegative)
  for (const [key, spec] of Object.entries(schema)) if (spec.type === 'bool') options[`no-${flagName(key)}`] = { type: 'boolean' };
  // parseArgs has no optional values: a bare `--resume` (at the end, or before another flag) becomes `--resume=`
  const args = argv.map((a, i) => {
    const spec = a.startsWith('--') ? schema[camelName(a.slice(2))] : undefined;
    const bare = spec?.type === 'string' && spec.optionalValue && (i + 1 === argv.length || argv[i + 1].startsWith('-'));
    return bare ? `${a}=` : a;
  });
  const { values: raw, positionals } = parseArgs({ args, options, strict: true, allowPositionals: true });
  if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (raw.help) return { values: defaults(schema) as Values<S>, explicit: {}, help: true };

  const fromFile = typeof raw.config === 'string' ? await readConfigFile(schema, raw.config, command) : {};
  const fromFlags: PartialValues = {};
  for (const [key, spec] of Object.entries(schema)) {
    const v = raw[flagName(key)];
    if (v !== undefined) fromFlags[key] = checkValue(spec, v, `--${flagName(key)}`, spec.type !== 'bool');
    if (spec.type === 'bool' && raw[`no-${flagName(key)}`]) {
      if (v !== undefined) throw new UsageError(`--${flagName(key)} and --no-${flagName(key)} contradict each other; give one`);
      fromFlags[key] = false;
    }
  }
  const explicit = { ...fromFile, ...fromFlags };
  return { values: { ...defaults(schema), ...explicit } as Values<S>, explicit, help: false };
}

/** The options again with `base` (a resumed run's saved options) between the defaults and what was given now. */
export function withBase<S extends OptionSchema>(schema: S, parsed: ParsedOptions<S>, base: PartialValues): ParsedOptions<S> {
  return { ...parsed, values: { ...defaults(schema), ...base, ...parsed.explicit } as Values<S> };
}
