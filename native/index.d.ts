// Types of the engine's Node-API addon. @s2s/core wraps these in the Model class; use that.

// The model config's keys. Their one schema is native/src/arch/config.cc (configSchema() below);
// test/config-schema.test.ts checks this interface and @s2s/core's config against it.
export interface NativeConfig {
  /** 'gpt2' (default) or 'llama' (Llama, Qwen2, Mistral, SmolLM2) */
  arch?: 'gpt2' | 'llama';
  vocabSize: number;
  maxSeqLen: number;
  numLayers: number;
  numHeads: number;
  channels: number;
  valueHead?: boolean;
  /** key/value heads (default numHeads) */
  numKvHeads?: number;
  /** channels per head (default channels / numHeads) */
  headDim?: number;
  /** the MLP's hidden width (default 4 * channels) */
  ffnSize?: number;
  normEps?: number;
  ropeTheta?: number;
  ropeScaling?: 'none' | 'llama3';
  ropeFactor?: number;
  ropeLowFreqFactor?: number;
  ropeHighFreqFactor?: number;
  ropeOriginalMaxPos?: number;
  qkvBias?: boolean;
  tieEmbeddings?: boolean;
  /** 'auto' (default): CUDA when available, else the CPU */
  device?: 'auto' | 'cpu' | 'cuda';
}

export interface NativeTensorInfo {
  name: string;
  shape: number[];
  offset: number;
  numel: number;
  decay: boolean;
}

export type NativeBufferKind = 'params' | 'grads' | 'adam_m' | 'adam_v';

export interface NativeForwardOptions {
  /** false skips the LM head: only values are computed (default true) */
  logprob?: boolean;
  values?: boolean;
  entropy?: boolean;
  temperature?: number;
}

export interface NativeForwardResult {
  /** absent when forward ran with logprob: false */
  logprob: Float32Array;
  values?: Float32Array;
  entropy?: Float32Array;
}

/** step()'s options: lr is required, and a key outside these is refused. */
export interface NativeAdamW {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  maxGradNorm?: number;
}

export interface NativeGenerateOptions {
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  eos?: Int32Array;
  seed?: number | bigint;
  /** row b samples from stream firstRow + b (default 0) */
  firstRow?: number;
}

export interface NativeGenerateResult {
  tokens: Int32Array;
  logprobs: Float32Array;
  lengths: Int32Array;
  eos: Uint8Array;
  maxNewTokens: number;
}

export interface NativeDivergenceResult {
  /** [B*T]: the rule's score inside spans, 0 elsewhere */
  scores: Float32Array;
  /** [B]: offset in the span of the first mismatch, -1 when none */
  firstDivergence: Int32Array;
  /** [B*T]: the model's argmax inside spans, -1 elsewhere */
  argmax: Int32Array;
}

// Every method copies its array arguments when it is called (changing them afterwards changes
// nothing; a detached ArrayBuffer is a TypeError), refuses option keys it does not know, and every
// call that reads the weights (forward, generate, greedyMatch, divergence) refuses parameters that
// contain NaN or Inf. writeBuffer refuses non-finite params/adam_m/adam_v and a negative adam_v.
export class NativeModel {
  constructor(config: NativeConfig);
  readonly numParams: number;
  /** how this model's matmuls multiply ('bf16-emulated' only on the CPU) */
  readonly precision: CpuPrecision;
  readonly config: Required<Omit<NativeConfig, 'device'>>;
  /** where the model lives: 'cpu' or 'cuda' */
  readonly device: 'cpu' | 'cuda';
  adamStep: number;
  layout(): NativeTensorInfo[];
  flopsPerToken(T?: number): number;
  initWeights(seed: number | bigint): Promise<void>;
  forward(
    tokens: Int32Array,
    targets: Int32Array | null,
    B: number,
    T: number,
    opts?: NativeForwardOptions,
  ): Promise<NativeForwardResult>;
  backward(dlogprob: Float32Array | null, dvalue?: Float32Array | null): Promise<void>;
  step(opts: NativeAdamW): Promise<number>;
  zeroGrad(): Promise<void>;
  generate(prompts: Int32Array, promptLengths: Int32Array, opts?: NativeGenerateOptions): Promise<NativeGenerateResult>;
  greedyMatch(
    tokens: Int32Array,
    B: number,
    T: number,
    spans: Int32Array,
  ): Promise<{ match: Uint8Array; argmax: Int32Array }>;
  divergence(
    tokens: Int32Array,
    B: number,
    T: number,
    spans: Int32Array,
    scores?: { positive?: number; negative?: number; neutral?: number },
  ): Promise<NativeDivergenceResult>;
  readBuffer(kind: NativeBufferKind, offset?: number, length?: number): Promise<Float32Array>;
  writeBuffer(kind: NativeBufferKind, data: Float32Array, offset?: number): Promise<void>;
  dispose(): void;
  /** The gradients summed over the group's ranks, times `scale` (1 / world size: their mean). */
  allreduceGrads(group: ProcessGroup, scale?: number): Promise<void>;
  /** root's parameters (and with `optimizer`, AdamW's moments and step count) on every rank. */
  broadcastParams(group: ProcessGroup, root?: number, optimizer?: boolean): Promise<void>;
}

export function setNumThreads(n: number): void;
export function getNumThreads(): number;
/** GFLOP/s of an M x K by K x N matmul through the engine's path at `precision` (default fp32;
 * bf16 is refused where the processor lacks it natively, see cpuBf16()), writing `outputs`
 * (default 1, at most 4096 and 4 GiB in all) results in turn. */
/** With S2S_PROFILE_OPS=1 (read at startup), forgets the op times so far: the table printed at exit
 * then covers only what ran after this call (steady steps, say). Call it between engine calls. */
export function opProfileReset(): void;
export function measureSgemm(M: number, N: number, K: number, iters: number, precision?: CpuPrecision, outputs?: number): Promise<number>;
/** How CPU matmuls multiply: fp32; bf16 inputs with fp32 accumulation (AMX / AVX512-BF16); or bf16's numbers emulated. */
export type CpuPrecision = 'fp32' | 'bf16' | 'bf16-emulated';
/** The setting of new CPU models' matmuls, as the engine reads S2S_CPU_PRECISION (auto: bf16 where the
 * processor has it natively, else fp32); throws on a bad value, or on bf16 where it is not native. */
export function cpuPrecision(): CpuPrecision;
/** Whether this processor multiplies bf16 natively (AMX-BF16 or AVX512-BF16 with oneDNN's kernels), and why not. */
export function cpuBf16(): { native: boolean; isa: string; reason: string };
export function cudaStatus(): { available: boolean; reason: string; device: string };
/** The precision of new CUDA models' matmuls, as the engine reads S2S_CUDA_PRECISION (throws on a bad value). */
export function cudaPrecision(): 'bf16' | 'fp32';

export interface NativeConfigField {
  /** the key of NativeConfig */
  key: string;
  type: 'integer' | 'boolean' | 'number' | 'string';
  /** integers: the accepted range */
  min?: number;
  max?: number;
  /** strings: the accepted values */
  choices?: string[];
  required: boolean;
  doc: string;
}
/** The model config's keys as the engine reads them (NativeModel's constructor) and reports them (.config). */
export function configSchema(): NativeConfigField[];

/** A data-parallel process group (Gloo over TCP); made by initProcessGroup. */
export class ProcessGroup {
  private constructor();
  readonly rank: number;
  readonly size: number;
  readonly backend: 'gloo';
  /** The element-wise sum over the ranks (a new array; bit-identical on every rank). */
  allreduce<A extends Float32Array | Float64Array>(data: A): Promise<A>;
  /** root's array on every rank (every rank passes the same length). */
  broadcast<A extends Float32Array | Float64Array>(data: A, root: number): Promise<A>;
  /** Every rank's array, rank 0's first. */
  allgather(data: Float64Array): Promise<Float64Array>;
  barrier(): Promise<void>;
  /** Closes this rank's connections; the other ranks' next collective fails, naming this rank. */
  destroy(): void;
}
export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr?: string;
  masterPort: number;
  /** how long to wait for the other ranks, to join and in each collective (default 600000) */
  timeoutMs?: number;
  /** the network interface for Gloo's connections (GLOO_SOCKET_IFNAME) */
  iface?: string;
}
/** Forms the group: resolves once every rank has joined (rank 0 serves the rendezvous at masterAddr:masterPort). */
export function initProcessGroup(opts: ProcessGroupOptions): Promise<ProcessGroup>;
/** Which collective libraries this build has. */
export function distSupport(): { gloo: boolean; glooReason: string };
