// A command's flags as one typed schema: what builds its --help text, reads its command line and
// its --config file, and checks every value with a message that names the flag or the file's key.

export class UsageError extends Error {
  override name = 'UsageError';
}

interface BaseOption {
  /** one line for --help */
  help: string;
  /** the value's placeholder in --help (FILE, DIR, N, X) */
  arg?: string;
  /** --help lists options under these headings, in order of first appearance */
  group?: string;
  /** shown in the usage line; checked by the command, which may find the value elsewhere (a resumed run's config) */
  required?: boolean;
  /** a further check, after the type's and range's: what is wrong with the value ("must be ..."), or undefined */
  check?: (value: OptionValue) => string | undefined;
}
export interface IntOption extends BaseOption {
  type: 'int';
  default?: number;
  min?: number;
  max?: number;
}
export interface FloatOption extends BaseOption {
  type: 'float';
  default?: number;
  min?: number;
  max?: number;
  /** the bounds themselves are not allowed */
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
}
export interface StringOption extends BaseOption {
  type: 'string';
  default?: string;
  /** `--flag` alone is allowed and reads as the empty string (`--resume` = the latest checkpoint) */
  optionalValue?: boolean;
}
export interface BoolOption extends BaseOption {
  type: 'bool';
  default?: boolean;
}
export interface EnumOption extends BaseOption {
  type: 'enum';
  values: readonly string[];
  default?: string;
}
export type OptionSpec = IntOption | FloatOption | StringOption | BoolOption | EnumOption;
/** Options by their camelCase name; the flag is its kebab-case form (maxSteps: --max-steps). */
export type OptionSchema = Record<string, OptionSpec>;
export type OptionValue = number | string | boolean;

type ValueOf<O> = O extends { type: 'int' | 'float' } ? number : O extends { type: 'bool' } ? boolean : O extends { values: readonly (infer V)[] } ? V : string;
/** Parsed options: an option with a default always has a value. */
export type Values<S extends OptionSchema> = {
  -readonly [K in keyof S]: S[K] extends { default: OptionValue } ? ValueOf<S[K]> : ValueOf<S[K]> | undefined;
};

export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const camelName = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function rangeText(o: IntOption | FloatOption): string {
  const { min, max } = o;
  if (o.type === 'int') {
    if (min === 1 && max === undefined) return 'a positive integer';
    if (min === 0 && max === undefined) return 'a non-negative integer';
    if (min !== undefined && max !== undefined) return `an integer in [${min}, ${max}]`;
    if (min !== undefined) return `an integer >= ${min}`;
    return max !== undefined ? `an integer <= ${max}` : 'an integer';
  }
  const lo = min === undefined ? undefined : `${o.exclusiveMin ? '(' : '['}${min}`;
  const hi = max === undefined ? undefined : `${max}${o.exclusiveMax ? ')' : ']'}`;
  if (lo && hi) return `a number in ${lo}, ${hi}`;
  if (lo) return `a number ${o.exclusiveMin ? '>' : '>='} ${min}`;
  if (hi) return `a number ${o.exclusiveMax ? '<' : '<='} ${max}`;
  return 'a number';
}

/**
 * Checks one value: `raw` is command-line text when `fromText`, else a JSON value from a config
 * file. `where` names it in the error ("--lr", or `run.json: "lr"`).
 */
export function checkValue(spec: OptionSpec, raw: unknown, where: string, fromText: boolean): OptionValue {
  const value = checkType(spec, raw, where, fromText);
  const problem = spec.check?.(value);
  if (problem) throw new UsageError(`${where} ${problem}`);
  return value;
}

function checkType(spec: OptionSpec, raw: unknown, where: string, fromText: boolean): OptionValue {
  const got = JSON.stringify(raw);
  switch (spec.type) {
    case 'int':
    case 'float': {
      const x = fromText ? (typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN) : typeof raw === 'number' ? raw : Number.NaN;
      const ok =
        Number.isFinite(x) &&
        (spec.type === 'float' || Number.isInteger(x)) &&
        (spec.min === undefined || (spec.type === 'float' && spec.exclusiveMin ? x > spec.min : x >= spec.min)) &&
        (spec.max === undefined || (spec.type === 'float' && spec.exclusiveMax ? x < spec.max : x <= spec.max));
      if (!ok) throw new UsageError(`${where} must be ${rangeText(spec)}, got ${got}`);
      return x;
    }
    case 'bool':
      if (typeof raw !== 'boolean') throw new UsageError(`${where} must be true or false, got ${got}`);
      return raw;
    case 'enum':
      if (typeof raw !== 'string' || !spec.values.includes(raw)) throw new UsageError(`${where} must be one of ${spec.values.join(', ')}, got ${got}`);
      return raw;
    case 'string':
      // in a config file, `"resume": true` is `--resume` alone
      if (!fromText && spec.optionalValue && raw === true) return '';
      if (typeof raw !== 'string') throw new UsageError(`${where} must be a string, got ${got}`);
      if (raw === '' && !spec.optionalValue) throw new UsageError(`${where} must not be empty`);
      return raw;
  }
}

/** The value or a usage error naming the flag: for options a command cannot run without. */
export function need<T>(value: T | undefined, key: string, arg = ''): T {
  if (value === undefined) throw new UsageError(`--${flagName(key)}${arg ? ' ' + arg : ''} is required`);
  return value;
}

/**
 * A library's config error (a RangeError that names fields as its config spells them, after a
 * "<what> config: " prefix) as a usage error that names them as flags: `flagOf` gives the flag
 * of a field, or undefined for a word that is not one.
 */
export function configErrorAsUsage(e: unknown, flagOf: (field: string) => string | undefined): unknown {
  if (!(e instanceof RangeError)) return e;
  const m = e.message.replace(/^[^:]* config: /, '').replace(/\b([a-z][A-Za-z0-9]*)\b/g, (w) => {
    const flag = flagOf(w);
    return flag === undefined ? w : `--${flag}`;
  });
  return new UsageError(m);
}
