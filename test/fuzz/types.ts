// What the input fuzz's parent (which makes and judges cases) and its child driver (which loads
// one case) share: a case's description and the child's one-line answer.

/**
 * What a case's input must lead to. 'must-accept': the valid input as generated; 'must-refuse':
 * invalid, non-finite or inconsistent input; 'may-accept': a benign change, either outcome is right.
 */
export type Expect = 'must-accept' | 'must-refuse' | 'may-accept';

/** What the child does with the case's folder (paths relative to it). */
export type LoadSpec =
  /**
   * loadModel, then forward, divergence and generate (and one training step when `train`) with
   * finite results; with `save`, saveModel and loadModel again (what was kept must write back)
   */
  | { op: 'model'; dir: string; optimizer: boolean; train: boolean; save: boolean }
  /** Tokenizer.load, then encode `texts` and decode the ids, and its files() read back */
  | { op: 'tokenizer'; dir: string; texts: string[] }
  /** loadJsonl / loadConversationalJsonl, then every row checked */
  | { op: 'jsonl'; file: string; kind: 'preference' | 'supervised' | 'prompt'; format: 'text' | 'conversational' };

export interface FuzzCase {
  index: number;
  /** the input kind: checkpoint-gpt2, checkpoint-llama, optimizer, config, tokenizer, jsonl */
  kind: string;
  /** the mutation's name ("none" for the valid input) */
  mutation: string;
  expect: Expect;
  /** the case folder's files, by name */
  files: Record<string, Uint8Array | string>;
  load: LoadSpec;
  /**
   * What a refusal's message must name: each inner list is one requirement met by any of its
   * strings (the file's basename or path, then the mutated field, tensor or file:line).
   */
  mustName: string[][];
  /** what the mutation did, for a failure's report */
  note: string;
  /** finite values so large that a model's results may overflow: those results are not judged */
  extreme?: boolean;
  /** for 'must-accept' JSONL cases: how many rows the file holds */
  rows?: number;
}

export type ChildResult =
  | { outcome: 'accepted'; problems: string[]; info: string }
  | { outcome: 'refused'; error: string; message: string };

/** The line the child prints its result on. */
export const RESULT_MARK = 'S2S-FUZZ-RESULT ';
