// `backhaul status`: what a running instance reports about its inputs and sinks.
import { humanDuration } from '../core/duration.js';
import { BackhaulError } from '../core/errors.js';
import { table } from './io.js';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseJsonc } from 'jsonc-parser';
import type { StatusReport } from '../runtime/control.js';

/** The data folder a config file names, without validating the rest (status needs no secrets). */
export function dataDirOf(configFile: string): string {
  return configBasics(configFile).dataDir;
}

/** dataDirOf for a command line: a file that cannot be read is BH_CONFIG_READ naming it. */
export function configDataDir(file: string): string {
  try {
    return configBasics(file).dataDir;
  } catch (e) {
    throw new BackhaulError('BH_CONFIG_READ', `cannot read config file ${resolve(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * The data folder and the device topic scheme's options of a config file, read leniently (no validation): enough
 * for commands that work on the data while Backhaul runs.
 */
export function configBasics(configFile: string): { dataDir: string; topics: { prefix?: string; homeSite?: string }; store: 'sqlite' | 'postgres' } {
  const abs = resolve(configFile);
  const raw = parseJsonc(readFileSync(abs, 'utf8'), [], { allowTrailingComma: true }) as
    | { data?: unknown; devices?: { topics?: { prefix?: unknown; homeSite?: unknown } }; store?: { type?: unknown } }
    | undefined;
  const data = typeof raw?.data === 'string' ? raw.data : './data';
  const t = raw?.devices?.topics;
  return {
    store: raw?.store?.type === 'postgres' ? 'postgres' : 'sqlite',
    dataDir: resolve(dirname(abs), data),
    topics: {
      ...(typeof t?.prefix === 'string' ? { prefix: t.prefix } : {}),
      ...(typeof t?.homeSite === 'string' ? { homeSite: t.homeSite } : {}),
    },
  };
}

export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}



export function formatStatus(r: StatusReport): string {
  const out: string[] = [];
  out.push(`Backhaul ${r.version}, pid ${r.pid}, up ${humanDuration(r.now - r.startedAt)}, data ${r.dataDir}`);
  out.push('');
  out.push('inputs:');
  out.push(
    table([
      ['  id', 'type', 'reach'],
      ...r.inputs.map((i) => [`  ${i.id}`, i.type, Object.entries(i.info).map(([k, v]) => `${k}=${v}`).join(' ')]),
    ]),
  );
  out.push('');
  out.push('sinks:');
  out.push(
    table([
      ['  id', 'type', 'state', 'backlog', 'bytes', 'oldest', 'delivered', 'retried', 'dropped', 'last error'],
      ...r.sinks.map((s) => [
        `  ${s.id}`,
        s.type,
        s.state,
        String(s.backlog),
        humanBytes(s.backlogBytes),
        s.backlog > 0 ? humanDuration(s.oldestAgeMs) : '-',
        String(s.delivered),
        String(s.retries),
        String(s.dropped),
        s.lastError ? `${new Date(s.lastError.at).toISOString()} ${s.lastError.message}` : '',
      ]),
    ]),
  );
  const b = r.brokerSync;
  if (b) {
    out.push('');
    const last = b.lastSync ? `last sync ${new Date(b.lastSync.at).toISOString()}: ${b.lastSync.devices} device login(s), ${b.lastSync.changes} change(s), ${b.lastSync.ms} ms` : 'not synced yet';
    out.push(`brokerSync: ${b.url} ${b.connected ? 'connected' : 'NOT CONNECTED'}; ${last}`);
    if (b.lastError) out.push(`  last error ${new Date(b.lastError.at).toISOString()} ${b.lastError.message}`);
  }
  return out.join('\n');
}
