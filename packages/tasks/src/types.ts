// What every testbed task provides: data generation with in- and out-of-distribution splits, a
// closed vocabulary, and a gold judge that scores a response and says why.

export interface SupervisedRow {
  prompt: string;
  completion: string;
}

export interface PreferenceRow {
  prompt: string;
  chosen: string;
  rejected: string;
}

export interface PromptRow {
  prompt: string;
}

export type Split = 'id' | 'ood';

export interface TaskData {
  task: string;
  seed: number;
  /** supervised fine-tuning data (in-distribution) */
  sft: SupervisedRow[];
  /** preference pairs for the reward models (in-distribution) */
  pairs: PreferenceRow[];
  /** prompts for PPO rollouts (in-distribution) */
  rlPrompts: PromptRow[];
  /** evaluation prompts: fresh in-distribution ones, and out-of-distribution ones */
  eval: Record<Split, PromptRow[]>;
}

export interface GenerateOptions {
  seed: number;
  sft?: number;
  pairs?: number;
  rlPrompts?: number;
  evalPrompts?: number;
}

export interface Judgement {
  /** the gold score: higher is better; comparable across responses to the same prompt */
  score: number;
  /** the parts the score is made of (coverage, penalties, flags), for reports */
  parts: Record<string, number | boolean>;
}

export interface Task {
  name: string;
  /**
   * Raised whenever the generated data or the judge changes, so that nothing trained on an
   * earlier version's data is reused for this one (the demo's cache keys hold it).
   */
  version: number;
  description: string;
  generate(opts: GenerateOptions): TaskData;
  judge(prompt: string, response: string): Judgement;
  /** What the gold judge finds wrong with a response, by name (none: a flawless one). */
  flaws(prompt: string, response: string): string[];
  /** The kind of request a prompt is, where the task has kinds (safety: benign, dual-use, harmful). */
  promptClass?(prompt: string): string;
  /**
   * Whether `prompt` is one of this task's (its form, and only its words): the gold judge means
   * nothing on any other prompt, so callers refuse those rather than print its numbers.
   */
  recognizes(prompt: string): boolean;
  /** every word any prompt or response of this task can contain (both splits) */
  words(): string[];
}

/** A recognizes() from the task's own test of a prompt's form and its vocabulary (words(), read once). */
export function recognizer(task: { words(): string[] }, form: (prompt: string) => boolean): (prompt: string) => boolean {
  let vocab: Set<string> | undefined;
  return (prompt) => {
    vocab ??= new Set(task.words());
    return form(prompt) && words(prompt).every((w) => vocab!.has(w));
  };
}

/** Responses here are words separated by single spaces; punctuation marks are words too. */
export function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}
