// Ctrl-C for training commands: the first SIGINT aborts the trainer through its AbortSignal, so it
// finishes the step, writes a checkpoint and returns; a second one exits at once.

/** Status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

export interface Interrupt {
  signal: AbortSignal;
  /** removes the SIGINT handler */
  dispose(): void;
}

/** Listens for SIGINT until disposed; `outer` (a caller's own signal) aborts it too. */
export function onInterrupt(outer?: AbortSignal): Interrupt {
  const controller = new AbortController();
  const fromOuter = () => controller.abort(outer?.reason);
  if (outer?.aborted) fromOuter();
  else outer?.addEventListener('abort', fromOuter, { once: true });
  const handler = () => {
    if (controller.signal.aborted) {
      console.error('\ns2s: interrupted again: exiting without a checkpoint');
      process.exit(EXIT_INTERRUPTED);
    }
    console.error('\ns2s: stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)');
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', handler);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', handler);
      outer?.removeEventListener('abort', fromOuter);
    },
  };
}
