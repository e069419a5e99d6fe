// Serialisation shared by the sinks: one JSON shape per message kind, SenML packs, MQTT topic templates and the
// small helpers several sinks need (URLs safe to print, numbers for emoncms). Every shape carries what a consumer
// needs to drop a duplicate delivered twice by a retry: the device with its `seq` when it has one, and the device
// with its `ts`.
import type { HubEvent, Message, Reading, Value } from '../core/types.js';

/** ISO-8601 UTC of a ms timestamp; an impossible timestamp gives `""` rather than throwing in a data path. */
export function isoTime(ts: number): string {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export interface ReadingJson {
  device: string;
  /** ms since the Unix epoch */
  ts: number;
  time: string;
  seq?: number;
  values: Record<string, Value>;
  units?: Record<string, string>;
  authenticated: boolean;
  /** id of the input the reading came in on */
  input: string;
}

export interface EventJson {
  event: string;
  ts: number;
  time: string;
  severity: HubEvent['severity'];
  device?: string;
  message: string;
  data?: Record<string, Value>;
}

export type MessageJson = ReadingJson | EventJson;

export function readingToJson(r: Reading): ReadingJson {
  const hasUnits = r.units !== undefined && Object.keys(r.units).length > 0;
  return {
    device: r.device,
    ts: r.ts,
    time: isoTime(r.ts),
    ...(r.seq !== undefined ? { seq: r.seq } : {}),
    values: { ...r.values },
    ...(hasUnits ? { units: { ...r.units } } : {}),
    authenticated: r.authenticated,
    input: r.source.input,
  };
}

export function eventToJson(e: HubEvent): EventJson {
  return {
    event: e.type,
    ts: e.ts,
    time: isoTime(e.ts),
    severity: e.severity,
    ...(e.device !== undefined ? { device: e.device } : {}),
    message: e.message,
    ...(e.data !== undefined ? { data: { ...e.data } } : {}),
  };
}

/** One value of a reading as its own JSON object (sinks that send a message per value: mqtt, nats). */
export interface ValueJson {
  device: string;
  measurement: string;
  value: Value;
  unit?: string;
  ts: number;
  time: string;
  seq?: number;
}

export function valueToJson(r: Reading, measurement: string, value: Value): ValueJson {
  const unit = r.units?.[measurement];
  return { device: r.device, measurement, value, ...(unit !== undefined ? { unit } : {}), ts: r.ts, time: isoTime(r.ts), ...(r.seq !== undefined ? { seq: r.seq } : {}) };
}

/** The plain JSON object a sink sends for a message (a reading or an event). */
export function messageToJson(m: Message): MessageJson {
  return m.kind === 'reading' ? readingToJson(m) : eventToJson(m);
}

// ---------------------------------------------------------------- SenML

export interface SenmlRecord {
  bn?: string;
  bt?: number;
  n?: string;
  u?: string;
  v?: number;
  vs?: string;
  vb?: boolean;
}

/**
 * A reading as a SenML (RFC 8428) pack: the first record carries `bn` = `<device>:` and `bt` = ts in seconds, then
 * one record per value (`v`, `vs` or `vb`, with `u` where the reading knows the unit). The reading's `seq` has no
 * SenML label and is not carried: consumers drop duplicates by name + time.
 */
export function messageToSenml(r: Reading): SenmlRecord[] {
  const base: SenmlRecord = { bn: `${r.device}:`, bt: r.ts / 1000 };
  const records: SenmlRecord[] = [];
  for (const [name, value] of Object.entries(r.values)) {
    const rec: SenmlRecord = records.length === 0 ? { ...base } : {};
    rec.n = name;
    const unit = r.units?.[name];
    if (unit !== undefined) rec.u = unit;
    if (typeof value === 'number') rec.v = value;
    else if (typeof value === 'boolean') rec.vb = value;
    else rec.vs = value;
    records.push(rec);
  }
  return records.length > 0 ? records : [base];
}

// ---------------------------------------------------------------- MQTT topics

export const TOPIC_PLACEHOLDERS = ['device', 'measurement', 'input', 'type'] as const;
export type TopicField = (typeof TOPIC_PLACEHOLDERS)[number];
export type TopicFields = Partial<Record<TopicField, string | undefined>>;

/**
 * One topic level from an untrusted value: the MQTT wildcards `+` `#`, the level separator `/` and NUL become `_`,
 * and an empty or missing value becomes `_`, so a device id can neither add levels nor make a filter of the topic.
 */
export function escapeTopicLevel(value: string | undefined): string {
  if (value === undefined || value === '') return '_';
  return value.replace(/[+#/]/g, '_').replaceAll('\u0000', '_');
}

/** Fill `{device}`, `{measurement}`, `{input}` and `{type}` in a topic template; other text is kept as written. */
export function renderTopic(template: string, fields: TopicFields): string {
  return template.replace(/\{(device|measurement|input|type)\}/g, (_m, key: TopicField) => escapeTopicLevel(fields[key]));
}

/** Why a topic template cannot be published to, or null when it is fine. */
export function topicTemplateError(template: string): string | null {
  if (template === '') return 'the topic template is empty';
  if (/[+#]/.test(template)) return 'a topic to publish to cannot contain the wildcards + or #';
  if (template.includes('\u0000')) return 'a topic cannot contain NUL';
  const unknown = [...template.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1] ?? '').filter((k) => !(TOPIC_PLACEHOLDERS as readonly string[]).includes(k));
  if (unknown.length > 0) return `unknown placeholder {${unknown[0]}} (known: ${TOPIC_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})`;
  return null;
}
