// Engine-wide settings and facts: thread count, the machine's measured matmul rate, CUDA state.
import { native } from './native.js';

/** Threads for every engine call (default: S2S_NUM_THREADS, else all cores). 0 restores the default. */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Sustained fp32 GEMM rate (GFLOP/s) through the engine's own matmul path. */
export function measureSgemm(M = 2048, N = 2048, K = 2048, iters = 10): Promise<number> {
  return native.measureSgemm(M, N, K, iters);
}

/** Whether the CUDA backend can run here (and on which GPU), and why not when it cannot. */
export function cudaStatus(): { available: boolean; reason: string; device: string } {
  return native.cudaStatus();
}
