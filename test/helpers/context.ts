// Builds real driver contexts for tests: a real Metrics registry, a silent logger (or a capturing one), a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { DriverContext, InputContext, StageContext } from '../../src/core/driver.js';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { Metrics } from '../../src/core/metrics.js';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import type { Frame, Message } from '../../src/core/types.js';

const made = new Set<string>();
// Whatever a test forgot to clean up goes when the test process exits.
process.once('exit', () => {
  for (const p of made) rmSync(p, { recursive: true, force: true });
});

export function tempDir(prefix = 'backhaul-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  made.add(path);
  return {
    path,
    cleanup: () => {
      // A hub stopped by a later after-hook may still be writing here (ENOTEMPTY): then the exit handler removes it.
      try {
        rmSync(path, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
        made.delete(path);
      } catch {
        /* left for the exit handler */
      }
    },
  };
}

export interface TestContextOptions {
  id?: string;
  clock?: Clock;
  logger?: Logger;
  metrics?: Metrics;
  dataDir?: string;
}

export function driverContext(opts: TestContextOptions = {}): DriverContext & { abort(): void } {
  const ac = new AbortController();
  const dataDir = opts.dataDir ?? tempDir().path;
  return {
    id: opts.id ?? 'test',
    logger: opts.logger ?? silentLogger(),
    metrics: opts.metrics ?? new Metrics(),
    clock: opts.clock ?? systemClock,
    signal: ac.signal,
    dataDir,
    resolvePath: (p: string) => (isAbsolute(p) ? p : resolve(dataDir, p)),
    abort: () => ac.abort(),
  };
}

/** An input context whose emit records frames (for driver-level tests; black-box tests use the real hub). */
export function inputContext(opts: TestContextOptions = {}): InputContext & { frames: Frame[]; abort(): void } {
  const frames: Frame[] = [];
  const base = driverContext(opts);
  return {
    ...base,
    frames,
    emit: (f: Frame) => {
      frames.push(f);
      return Promise.resolve();
    },
    emitStrict: (f: Frame) => {
      frames.push(f);
      return Promise.resolve(1);
    },
    // No registry here: logins are refused, as for an unknown device.
    authenticate: () => Promise.resolve(undefined),
    authenticateCertificate: () => Promise.resolve({ refused: 'no registry in this test context' }),
  };
}

export function stageContext(opts: TestContextOptions & { route?: string } = {}): StageContext & {
  emitted: Message[];
  drops: Map<string, number>;
} {
  const emitted: Message[] = [];
  const drops = new Map<string, number>();
  return {
    ...driverContext(opts),
    route: opts.route ?? 'test-route',
    emitted,
    drops,
    emit: (m: Message) => {
      emitted.push(m);
    },
    dropped: (reason: string, n = 1) => {
      drops.set(reason, (drops.get(reason) ?? 0) + n);
    },
  };
}

/**
 * Teardown in reverse order of setup (node:test runs `t.after` hooks in the order they were added): what was made last
 * is released first, so a client closes before the server it talks to stops, and a folder goes after what used it.
 */
export function teardown(t: { after(fn: () => unknown): void }): (fn: () => unknown) => void {
  const stack: Array<() => unknown> = [];
  t.after(async () => {
    for (const fn of stack.reverse()) await fn();
  });
  return (fn) => void stack.push(fn);
}
