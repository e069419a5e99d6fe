// The order log: every order sent to a device (CommandCenter, src/devices/commands.ts, sends them), and what became
// of it. The interface every store's part for it implements (OrderLog), with its SQLite implementation (the
// `commands` table of the registry file).
import { BackhaulError, shown } from '../../core/errors.js';
import { whereClause } from '../../core/sql.js';
import type { JsonObject, JsonValue } from '../types.js';
import { parseJson, SqlitePart } from './sqlite.js';

/** What becomes of an order: sent, then acknowledged or failed by the device, or expired without an answer. */
export const COMMAND_STATUSES = ['sent', 'acknowledged', 'failed', 'expired'] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

export interface CommandInput {
  /** Unique; carried in the published order so the device's acknowledgement can name it. */
  readonly id: string;
  readonly device: string;
  readonly order: string;
  readonly params: JsonObject;
  /** Who sent it: `cli:alice`, `api:bob`, `route:<name>`. */
  readonly actor: string;
  /** The command topic it was published on, and its `dest`. */
  readonly topic: string;
  readonly dest: string;
  /** Default: the store's clock. */
  readonly at?: number;
}

export interface CommandRecord extends Omit<CommandInput, 'at'> {
  readonly sentAt: number;
  readonly status: CommandStatus;
  /** When it was acknowledged, failed or expired. */
  readonly doneAt?: number;
  /** What the device answered (its status message), or why it expired. */
  readonly result?: JsonValue;
}

export interface CommandQuery {
  readonly device?: string;
  readonly status?: CommandStatus;
  readonly limit?: number;
}

export interface OrderLog {
  /** Record an order as sent. BH_DEVICE_EXISTS when its id is taken. */
  recordCommand(c: CommandInput): Promise<CommandRecord>;
  /**
   * Close a sent order: acknowledged, failed or expired, with what the device answered. Only a `sent` order changes
   * (an acknowledgement arriving twice, or after expiry, changes nothing); returns the record as it now is, undefined
   * when there is no such order.
   */
  settleCommand(id: string, status: Exclude<CommandStatus, 'sent'>, result?: JsonValue, at?: number): Promise<CommandRecord | undefined>;
  getCommand(id: string): Promise<CommandRecord | undefined>;
  /** Newest first. */
  listCommands(q?: CommandQuery): Promise<CommandRecord[]>;
}

/** A row of the commands table, as every store reads it. */
export interface CommandRow {
  id: string;
  device: string;
  name: string;
  params: string;
  actor: string;
  topic: string;
  dest: string;
  sent_at: number;
  status: string;
  done_at: number | null;
  result: string | null;
}

export function toCommand(r: CommandRow): CommandRecord {
  return {
    id: r.id,
    device: r.device,
    order: r.name,
    params: parseJson<JsonObject>(r.params, {}),
    actor: r.actor,
    topic: r.topic,
    dest: r.dest,
    sentAt: r.sent_at,
    status: (COMMAND_STATUSES as readonly string[]).includes(r.status) ? (r.status as CommandStatus) : 'sent',
    ...(r.done_at !== null ? { doneAt: r.done_at } : {}),
    ...(r.result !== null ? { result: parseJson<JsonValue>(r.result, null) } : {}),
  };
}

/** The commands table, on the registry file's shared connection (index.ts opens it). */
export class SqliteOrderLog extends SqlitePart implements OrderLog {
  recordCommand(c: CommandInput): Promise<CommandRecord> {
    return this.read(() => {
      const at = c.at ?? this.clock.now();
      try {
        this.stmt('INSERT INTO commands (id, device, name, params, actor, topic, dest, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
          c.id,
          c.device,
          c.order,
          JSON.stringify(c.params),
          c.actor,
          c.topic,
          c.dest,
          at,
        );
      } catch (e) {
        if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new BackhaulError('BH_DEVICE_EXISTS', `an order with id ${shown(c.id)} exists already`, { path: 'id' });
        }
        throw e;
      }
      return this.commandSync(c.id)!;
    });
  }

  settleCommand(id: string, status: Exclude<CommandStatus, 'sent'>, result?: JsonValue, at?: number): Promise<CommandRecord | undefined> {
    return this.read(() => {
      this.stmt("UPDATE commands SET status = ?, done_at = ?, result = ? WHERE id = ? AND status = 'sent'").run(
        status,
        at ?? this.clock.now(),
        result === undefined ? null : JSON.stringify(result),
        id,
      );
      return this.commandSync(id);
    });
  }

  getCommand(id: string): Promise<CommandRecord | undefined> {
    return this.read(() => this.commandSync(id));
  }

  private commandSync(id: string): CommandRecord | undefined {
    const r = this.stmt('SELECT * FROM commands WHERE id = ?').get(id) as CommandRow | undefined;
    return r ? toCommand(r) : undefined;
  }

  listCommands(q: CommandQuery = {}): Promise<CommandRecord[]> {
    return this.read(() => {
      const { sql: where, params } = whereClause([
        ['device = @device', 'device', q.device],
        ['status = @status', 'status', q.status],
      ]);
      params['limit'] = q.limit === undefined ? -1 : Math.max(0, Math.floor(q.limit));
      const rows = this.stmt(`SELECT * FROM commands${where} ORDER BY sent_at DESC, rowid DESC LIMIT @limit`).all(params) as CommandRow[];
      return rows.map(toCommand);
    });
  }
}
