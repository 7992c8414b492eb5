// A command's --help text, built from its option schema so that the two never disagree.
import { type OptionSchema, type OptionSpec, flagName } from './options.js';

function placeholder(spec: OptionSpec): string {
  if (spec.type === 'bool') return '';
  const arg = spec.arg ?? (spec.type === 'enum' ? spec.values.join('|') : spec.type === 'int' ? 'N' : spec.type === 'float' ? 'X' : 'VALUE');
  return spec.type === 'string' && spec.optionalValue ? ` [${arg}]` : ` ${arg}`;
}

function describe(spec: OptionSpec): string {
  if (spec.default === undefined || spec.type === 'bool') return spec.help;
  return `${spec.help} (default ${spec.default})`;
}

export interface HelpText {
  /** e.g. "sft" or "rm train" */
  name: string;
  /** what the command does, a few lines */
  description: string;
  options: OptionSchema;
  /** example command lines */
  examples?: string[];
}

export function helpText(cmd: HelpText): string {
  const entries = Object.entries(cmd.options);
  const required = entries.filter(([, s]) => s.required).map(([k, s]) => `--${flagName(k)}${placeholder(s)}`);
  const rows: Array<[string, string, string]> = entries.map(([k, s]) => [s.group ?? 'options', `--${flagName(k)}${placeholder(s)}`, describe(s)]);
  rows.push(['other', '--config FILE', 'read options from a JSON file (keys: option names, camelCase or kebab-case); flags given here win']);
  rows.push(['other', '-h, --help', 'this help']);
  const width = Math.min(30, Math.max(...rows.map(([, f]) => f.length)) + 2);
  const groups = [...new Set(rows.map(([g]) => g))];
  const lines = [`usage: s2s ${cmd.name}${required.length ? ' ' + required.join(' ') : ''} [flags]`, '', cmd.description.trim(), ''];
  for (const g of groups) {
    lines.push(`${g}:`);
    for (const [group, flag, text] of rows)
      if (group === g) lines.push(flag.length + 2 > width ? `  ${flag}\n  ${' '.repeat(width)}${text}` : `  ${flag.padEnd(width)}${text}`);
    lines.push('');
  }
  if (cmd.examples?.length) lines.push('examples:', ...cmd.examples.map((e) => `  ${e}`), '');
  return lines.join('\n');
}
