// The local control endpoint: HTTP over a Unix socket beside the data (mode 0600), so `backhaul status` can ask a
// running instance without any network port, and `backhaul devices command` can have it send an order through its
// broker. It also stops two instances from sharing one data folder, which would deliver every outbox twice.
// Only the user who runs Backhaul (and root) can open the socket; that is the whole of its access control.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackhaulError, type ErrorCode, errorText, isBackhaulError } from '../core/errors.js';
import type { AlarmQuery } from '../devices/alarm-types.js';
import type { SendCommand } from '../devices/commands.js';
import type { CommandRecord } from '../devices/store/orders.js';
import type { BrokerSyncStatus } from './dynsec.js';
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
  /** The external Mosquitto kept in step with the registry, when the config has `brokerSync`. */
  readonly brokerSync?: BrokerSyncStatus;
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
    private readonly command?: (req: SendCommand) => Promise<CommandRecord>,
    private readonly alarms?: (req: AlarmRequest) => Promise<unknown>,
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
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET' && req.url === '/status') {
        res.end(JSON.stringify(this.report()));
        return;
      }
      const handlers: Record<string, ((body: unknown) => Promise<unknown>) | undefined> = {
        '/command': this.command && ((b) => this.command!(b as SendCommand)),
        '/alarms': this.alarms && ((b) => this.alarms!(b as AlarmRequest)),
      };
      const handle = req.method === 'POST' ? handlers[req.url ?? ''] : undefined;
      if (handle) {
        readBody(req)
          .then((body) => handle(JSON.parse(body)))
          .then(
            (record) => res.end(JSON.stringify(record)),
            (e: unknown) => {
              res.statusCode = 400;
              const error = isBackhaulError(e) ? { code: e.code, message: e.detail, ...(e.path ? { path: e.path } : {}) } : { message: errorText(e) };
              res.end(JSON.stringify({ error }));
            },
          );
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

function readBody(req: import('node:http').IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > 1 << 20) req.destroy(new Error('request too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/** What `backhaul alarms` asks of the running instance's alarm keeper. */
export type AlarmRequest =
  | { readonly action: 'list'; readonly query: AlarmQuery }
  | { readonly action: 'ack' | 'clear'; readonly id: string; readonly by: string; readonly note?: string };

/**
 * Have the running instance send an order. Rejects with the instance's BackhaulError (its code, message and path),
 * or BH_NOT_RUNNING when none answers.
 */
export function sendCommandTo(dataDir: string, req: SendCommand, timeoutMs = 15_000): Promise<CommandRecord> {
  return postControl<CommandRecord>(dataDir, '/command', req, 'orders are sent by the running instance\'s broker', timeoutMs);
}

/** Ask the running instance's alarm keeper (the registry's alarms are its to change while it runs). */
export function alarmsCall<T>(dataDir: string, req: AlarmRequest, timeoutMs = 15_000): Promise<T> {
  return postControl<T>(dataDir, '/alarms', req, 'alarms are kept by the running instance', timeoutMs);
}

function postControl<T>(dataDir: string, path: string, req: unknown, why: string, timeoutMs: number): Promise<T> {
  const socketPath = controlSocketPath(dataDir);
  const notRunning = () => new BackhaulError('BH_NOT_RUNNING', `no Backhaul is running with the data folder ${dataDir}; ${why}`);
  if (!existsSync(socketPath)) return Promise.reject(notRunning());
  return new Promise((resolve, reject) => {
    const r = request({ socketPath, path, method: 'POST', timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode === 404) {
          reject(new BackhaulError('BH_NOT_RUNNING', `the Backhaul running with ${dataDir} does not answer ${path} (an older version?)`));
          return;
        }
        try {
          const v = JSON.parse(body) as T | { error: { code?: ErrorCode; message: string; path?: string } };
          if (typeof v === 'object' && v !== null && 'error' in v) {
            const e = v.error;
            reject(e.code ? new BackhaulError(e.code, e.message, e.path ? { path: e.path } : {}) : new Error(e.message));
          } else resolve(v);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
    r.on('timeout', () => r.destroy(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`)));
    r.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? reject(notRunning()) : reject(e)));
    r.end(JSON.stringify(req));
  });
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
