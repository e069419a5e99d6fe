// Promises in flight, so a `stop()` can wait for them to settle: the emits of an input, the routes of the hub.

/** Keeps the promises it is given until they settle. */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  /** Returns `p` itself, after noting it. */
  track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    const remove = () => this.pending.delete(p);
    p.then(remove, remove);
    return p;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Resolves once every promise tracked so far, and any tracked meanwhile, has settled. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
