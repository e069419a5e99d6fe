// Small helpers shared by the input drivers.

/** A plain Uint8Array view of a Buffer's bytes (no copy), so frames carry exactly the type `Frame` declares. */
export function bytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Keeps the promises of emits in flight, so `stop()` can wait for them to settle. */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();
  track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    const remove = () => this.pending.delete(p);
    p.then(remove, remove);
    return p;
  }
  get size(): number {
    return this.pending.size;
  }
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A promise with its resolve function, for `done()`. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
