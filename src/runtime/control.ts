// The local control endpoint: HTTP over a Unix socket beside the data (mode 0600), so `backhaul status` can ask a
// running instance without any network port. It also stops two instances from sharing one data folder, which would
// deliver every outbox twice.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackhaulError } from '../core/errors.js';
import type { InputStatus } from './hub.js';
import type { SinkStatus } from '../outbox/runner.js';

export interface StatusReport {
  readonly pid: number;
  readonly version: string;
  readonly startedAt: number;
  readonly now: number;
  readonly dataDir: string;
  readonly inputs: readonly InputStatus[];
  readonly sinks: readonly SinkStatus[];
}

/** Unix socket paths are limited to ~107 bytes; deep data folders get a socket in the temp folder instead. */
export function controlSocketPath(dataDir: string): string {
  const p = join(dataDir, 'control.sock');
  if (Buffer.byteLength(p) <= 100) return p;
  return join(tmpdir(), `backhaul-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}.sock`);
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server: Server | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly report: () => StatusReport,
  ) {}

  get path(): string {
    return controlSocketPath(this.dataDir);
  }

  async start(): Promise<void> {
    const path = this.path;
    if (existsSync(path)) {
      if (await someoneListens(path)) {
        throw new BackhaulError('BH_DATA_IN_USE', `another Backhaul is running with the data folder ${this.dataDir} (its control socket ${path} answers)`, {
          path: 'data',
        });
      }
      unlinkSync(path); // left by a crash
    }
    const server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/status') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(this.report()));
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    if (existsSync(this.path)) unlinkSync(this.path);
  }
}

/** Ask a running instance for its status; undefined when none answers. */
export function fetchStatus(dataDir: string, timeoutMs = 5000): Promise<StatusReport | undefined> {
  const socketPath = controlSocketPath(dataDir);
  if (!existsSync(socketPath)) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/status', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as StatusReport);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? resolve(undefined) : reject(e)));
    req.end();
  });
}
