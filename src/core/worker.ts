// Requests and replies over a worker thread. Storage that commits to disk (the journal, the historian) runs in one,
// so the event loop never waits for SQLite or an fsync: while a thread's commit syncs, the main thread keeps parsing
// MQTT, acknowledging and delivering, and the next group fills.
import { errorText } from './errors.js';
import { Worker, parentPort, workerData, type TransferListItem } from 'node:worker_threads';

/** An error as it crosses the thread boundary: the message and the SQLite code (`SQLITE_BUSY`, …) survive. */
export class WorkerCallError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'WorkerCallError';
  }
}

interface Request {
  readonly id: number;
  readonly op: string;
  readonly payload: unknown;
}

type Reply = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly message: string; readonly code?: string };

/** The main thread's side. `start()` spawns the thread; `call()` sends one request; `stop()` ends the thread. */
export class WorkerClient {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: Error | undefined;

  constructor(
    private readonly url: URL,
    private readonly data: unknown,
    private readonly name: string,
  ) {}

  start(): Promise<void> {
    // A storage thread keeps little in its heap: a small young generation keeps its memory small too (measured: about
    // 5 MiB less resident per thread than the default, which sizes it for the main thread's allocation rate).
    const w = new Worker(this.url, { workerData: this.data, name: this.name, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
    this.worker = w;
    w.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(new WorkerCallError(r.message, r.code));
    });
    const fail = (e: Error) => {
      this.failure ??= e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new WorkerCallError(`${this.name} thread exited (code ${code})`, undefined)));
    return new Promise((resolve, reject) => {
      w.once('online', () => resolve());
      w.once('error', reject);
    });
  }

  call<T>(op: string, payload: unknown, transfer?: readonly TransferListItem[]): Promise<T> {
    const w = this.worker;
    if (!w || this.failure) return Promise.reject(this.failure ?? new WorkerCallError(`${this.name} thread is not running`, undefined));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.postMessage({ id, op, payload } satisfies Request, transfer);
    });
  }

  /** Ends the thread. Call after the last request settled (a close request, say); anything still pending fails. */
  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}

export type Handlers = Readonly<Record<string, (payload: never) => unknown>>;

/**
 * The thread's side: answer each request with its handler's result (awaited if it is a promise). Handlers run one
 * at a time, in the order requests came, so a handler can rely on what the one before it did.
 */
export function serveRequests(handlers: Handlers): void {
  const port = parentPort;
  if (!port) throw new Error('serveRequests() runs in a worker thread');
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (req: Request) => {
    queue = queue.then(async () => {
      const h = handlers[req.op];
      try {
        if (!h) throw new Error(`unknown request ${req.op}`);
        const value: unknown = await (h as (p: unknown) => unknown)(req.payload);
        port.postMessage({ id: req.id, ok: true, value } satisfies Reply);
      } catch (e) {
        const code = (e as { code?: unknown } | undefined)?.code;
        port.postMessage({
          id: req.id,
          ok: false,
          message: errorText(e),
          ...(typeof code === 'string' ? { code } : {}),
        } satisfies Reply);
      }
    });
  });
}

/** What the main thread passed to `new WorkerClient(url, data)`. */
export function threadData<T>(): T {
  return workerData as T;
}
