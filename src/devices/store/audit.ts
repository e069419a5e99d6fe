// The audit log: who did what to which device, and with what result. The other parts of the store do not write it
// themselves: the CLI, the API (and its bootstrap routes), provisioning, the manifest importer and the order center
// append who did what. The interface every store's part for it implements (AuditLog), with its SQLite implementation
// (the `audit` table of the registry file).
import { whereClause } from '../../core/sql.js';
import type { JsonObject } from '../types.js';
import { parseJson, SqlitePart } from './sqlite.js';

export interface AuditInput {
  /** Who: `cli:alice`, `api:bob`, `hub`, `device:<id>`. */
  readonly actor: string;
  /** What: `device.add`, `device.set`, `device.enable`, `device.import`, `credentials.reset`, `command.reboot`. */
  readonly action: string;
  readonly device?: string;
  readonly detail?: JsonObject;
  /** `ok`, `error: ...`, `acknowledged`, ... */
  readonly result?: string;
  /** Default: the store's clock. */
  readonly at?: number;
}

export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly actor: string;
  readonly action: string;
  readonly device?: string;
  readonly detail?: JsonObject;
  readonly result?: string;
}

export interface AuditQuery {
  readonly device?: string;
  readonly action?: string;
  /** Inclusive, ms. */
  readonly since?: number;
  readonly limit?: number;
}

export interface AuditLog {
  appendAudit(entry: AuditInput): Promise<AuditEntry>;
  /** Several entries in one go (one transaction where the store has them); returns how many. */
  appendAuditMany(entries: readonly AuditInput[]): Promise<number>;
  /** Newest first. */
  listAudit(q?: AuditQuery): Promise<AuditEntry[]>;
}

/** A row of the audit table, as every store reads it. */
export interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  action: string;
  device: string | null;
  detail: string | null;
  result: string | null;
}

export function toAuditEntry(r: AuditRow): AuditEntry {
  return {
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action,
    ...(r.device !== null ? { device: r.device } : {}),
    ...(r.detail !== null ? { detail: parseJson<JsonObject>(r.detail, {}) } : {}),
    ...(r.result !== null ? { result: r.result } : {}),
  };
}

/** The audit table, on the registry file's shared connection (index.ts opens it). */
export class SqliteAuditLog extends SqlitePart implements AuditLog {
  appendAudit(entry: AuditInput): Promise<AuditEntry> {
    return this.read(() => this.appendAuditSync(entry));
  }

  appendAuditMany(entries: readonly AuditInput[]): Promise<number> {
    return this.tx(() => {
      for (const e of entries) this.appendAuditSync(e);
      return entries.length;
    });
  }

  private appendAuditSync(entry: AuditInput): AuditEntry {
    const at = entry.at ?? this.clock.now();
    const r = this.stmt('INSERT INTO audit (at, actor, action, device, detail, result) VALUES (?, ?, ?, ?, ?, ?)').run(
      at,
      entry.actor,
      entry.action,
      entry.device ?? null,
      entry.detail === undefined ? null : JSON.stringify(entry.detail),
      entry.result ?? null,
    );
    return {
      seq: Number(r.lastInsertRowid),
      at,
      actor: entry.actor,
      action: entry.action,
      ...(entry.device !== undefined ? { device: entry.device } : {}),
      ...(entry.detail !== undefined ? { detail: entry.detail } : {}),
      ...(entry.result !== undefined ? { result: entry.result } : {}),
    };
  }

  listAudit(q: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.read(() => this.listAuditSync(q));
  }

  private listAuditSync(q: AuditQuery): AuditEntry[] {
    const { sql: where, params } = whereClause([
      ['device = @device', 'device', q.device],
      ['action = @action', 'action', q.action],
      ['at >= @since', 'since', q.since],
    ]);
    params['limit'] = q.limit === undefined ? -1 : Math.max(0, Math.floor(q.limit));
    const rows = this.stmt(`SELECT * FROM audit${where} ORDER BY seq DESC LIMIT @limit`).all(params) as AuditRow[];
    return rows.map(toAuditEntry);
  }
}
