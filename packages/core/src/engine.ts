// Engine-wide settings and facts: thread count, default device, the machine's measured matmul
// rate, CUDA state.
import type { Device } from './model.js';
import { type CpuPrecision, native } from './native.js';

const DEVICES: readonly Device[] = ['auto', 'cpu', 'cuda'];
let defaultDevice: Device | undefined;

/**
 * Where models go when their options name no device (Model.create, Model.empty, loadModel): the
 * last setDefaultDevice(), else the S2S_DEVICE environment variable, else 'auto' (CUDA when
 * cudaStatus() says it is usable, else the CPU). undefined restores the default.
 */
export function setDefaultDevice(device: Device | undefined): void {
  if (device !== undefined && !DEVICES.includes(device)) throw new RangeError(`device must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
  defaultDevice = device;
}

export function getDefaultDevice(): Device {
  if (defaultDevice) return defaultDevice;
  const env = process.env.S2S_DEVICE;
  if (env === undefined || env === '') return 'auto';
  if (!DEVICES.includes(env as Device)) throw new RangeError(`S2S_DEVICE must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(env)}`);
  return env as Device;
}

/** Threads for every engine call (default: S2S_NUM_THREADS, else all cores). 0 restores the default. */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/**
 * Sustained GEMM rate (GFLOP/s) through the engine's own matmul path, at `precision`. With
 * `outputs` > 1 the products write that many M x N results in turn: with more than the caches
 * hold, each writes to memory that is not in the cache, as a training step's products do.
 */
export async function measureSgemm(M = 2048, N = 2048, K = 2048, iters = 10, precision: CpuPrecision = 'fp32', outputs = 1): Promise<number> {
  return native.measureSgemm(M, N, K, iters, precision, outputs);
}

/** Whether the CUDA backend can run here (and on which GPU), and why not when it cannot. */
export function cudaStatus(): { available: boolean; reason: string; device: string } {
  return native.cudaStatus();
}

/** Where a model given `device` (default: getDefaultDevice()) runs: 'auto' resolved by cudaStatus(). */
export function resolveDevice(device: Device = getDefaultDevice()): 'cpu' | 'cuda' {
  if (device === 'auto') return cudaStatus().available ? 'cuda' : 'cpu';
  return device;
}

/**
 * How new CPU models' matmuls multiply, as the engine reads S2S_CPU_PRECISION: 'auto' (the default)
 * gives 'bf16' where the processor multiplies bf16 natively (AMX-BF16 or AVX512-BF16), else 'fp32';
 * 'bf16' where it does not is refused with the engine's message; 'bf16-emulated' gives bf16's
 * numbers on any processor, slower than fp32 (for checking results).
 */
export function cpuPrecision(): CpuPrecision {
  return native.cpuPrecision();
}

/** Whether this processor multiplies bf16 natively, with which instructions, and why not. */
export function cpuBf16(): { native: boolean; isa: string; reason: string } {
  return native.cpuBf16();
}

/** The precision of CUDA models' matmuls, as the engine reads S2S_CUDA_PRECISION ('bf16' or 'fp32', else
 * 'bf16'); throws the engine's message for any other value. */
export function cudaPrecision(): 'bf16' | 'fp32' {
  return native.cudaPrecision();
}
