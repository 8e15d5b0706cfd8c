/**
 * Stream helpers shared by the engine and the destinations.
 *
 * drained(): waits until a writable may take more ('drain') or is gone ('close': destroyed, failed
 * or finished). Listeners are removed either way, so waiting many times on one long-lived stream
 * leaves nothing behind (racing a long-lived promise instead would add a reaction per wait).
 */
import type { Writable } from 'node:stream';

export function drained(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
