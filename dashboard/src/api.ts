// Every call the dashboard makes to the Backhaul HTTP API (docs/api.md), typed with the shapes described there.
//
// Authentication is the `bh_session` cookie the server sets on `POST /api/v1/session` (httpOnly: this code never sees
// it, and the token is never stored by the browser). Every request is `credentials: 'same-origin'`. Every error
// becomes an ApiError carrying the server's `{error: {code, message, path?}}`; a 401 on any data call also tells
// the app (onUnauthorized) so it can show the login page.
//
// URLs are relative (`api/v1/…`): the page is served at `/`, so they resolve to `/api/v1/…`, and they keep working
// when a reverse proxy mounts Backhaul under a prefix.

export type Role = 'viewer' | 'operator' | 'admin';

export interface Session {
  readonly name: string;
  readonly role: Role;
  readonly via?: 'bearer' | 'session';
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export type Liveness = 'active' | 'late' | 'outdated' | 'disabled' | 'unknown';

export interface Location {
  readonly site?: string;
  readonly building?: string;
  readonly room?: string;
}

export interface Device {
  readonly id: string;
  readonly kind: string;
  readonly type: string;
  readonly location: Location;
  readonly description: string;
  readonly tags: readonly string[];
  readonly enabled: boolean;
  readonly state: string;
  readonly blockedReason?: string;
  readonly thresholds: { readonly maxSilentMs?: number; readonly batteryFloor?: number };
  readonly lastSeen?: number;
  readonly lastStatus?: JsonValue;
  readonly config: JsonObject;
  readonly username?: string;
  readonly passwordIssued: boolean;
  /** The bootstrap claim window, whether a claim code is set, and who took the password (src/api/README.md). */
  readonly claim: { readonly open: boolean; readonly until?: number; readonly code: boolean; readonly claimedAt?: number; readonly claimedBy?: string };
  readonly source: string;
  readonly topics?: { readonly base: string; readonly status: string; readonly command: string };
  readonly liveness: Liveness;
  /**
   * Whether the device can take orders, and over what (the device view has it since the hub learned where orders go): absent on an older
   * Backhaul, and then orders are offered as before.
   */
  readonly orders?: { readonly accepted: boolean; readonly via?: 'mqtt' | 'lorawan'; readonly reason?: string };
  /** The severity mode the device reports (NORMAL, WARNING, DANGER), when it reports one. */
  readonly mode?: string;
  /** A LoRaWAN device's network side as the registry keeps it: NS ids, last frame counter, signal, battery. */
  readonly lorawan?: Lorawan;
}

export interface Lorawan {
  readonly ns: string;
  readonly input: string;
  readonly applicationId?: string;
  readonly tenant?: string;
  readonly deviceId?: string;
  readonly fCnt?: number;
  readonly fPort?: number;
  readonly rssi?: number;
  readonly snr?: number;
  readonly gateways?: number;
  readonly sf?: number;
  readonly battery?: number;
  readonly margin?: number;
  readonly at: number;
}

export type CommandStatus = 'sent' | 'acknowledged' | 'failed' | 'expired';

export interface Command {
  readonly id: string;
  readonly device: string;
  readonly order: string;
  readonly params: JsonObject;
  readonly actor: string;
  readonly topic: string;
  readonly dest: string;
  readonly sentAt: number;
  readonly status: CommandStatus;
  readonly doneAt?: number;
  readonly result?: JsonValue;
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

export interface DeviceDetail extends Device {
  readonly audit: readonly AuditEntry[];
  readonly commands: readonly Command[];
}

export interface DeviceList {
  readonly items: readonly Device[];
  readonly total: number;
}

/** The subset of JSON Schema the config form understands; anything else is edited as JSON. */
export interface JsonSchema {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | JsonSchema;
  readonly enum?: readonly JsonValue[];
  readonly const?: JsonValue;
  readonly anyOf?: readonly JsonSchema[];
  readonly oneOf?: readonly JsonSchema[];
  readonly items?: JsonSchema;
  readonly uniqueItems?: boolean;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly multipleOf?: number;
  readonly default?: JsonValue;
  readonly description?: string;
  readonly title?: string;
}

export interface DeviceType {
  readonly name: string;
  readonly topicName: string;
  readonly description: string;
  readonly defaults: { readonly maxSilentMs?: number; readonly batteryFloor?: number };
  readonly config: JsonSchema;
}

export interface LatestValue {
  readonly measurement: string;
  readonly value: JsonValue;
  readonly unit?: string;
  readonly ts: number;
  /** The value came over the device's own login (not a gateway, an anonymous or external sender). */
  readonly authenticated: boolean;
}

export interface Reading {
  readonly measurement: string;
  readonly ts: number;
  readonly value: JsonValue;
  readonly unit?: string;
}

export type Severity = 'info' | 'warning' | 'critical';

export interface HubEvent {
  readonly ts: number;
  readonly type: string;
  readonly severity: Severity;
  readonly device?: string;
  readonly message: string;
  readonly data?: JsonObject;
}

export interface SinkStatus {
  readonly id: string;
  readonly type: string;
  /** `starting`, `up`, `retrying`, `stopped` or `closed`. */
  readonly state?: string;
  readonly up?: boolean;
  readonly backlog: number;
  readonly backlogBytes: number;
  readonly oldestAgeMs: number;
  readonly delivered: number;
  readonly retries: number;
  readonly dropped: number;
  readonly lastError?: { readonly message: string; readonly at: number };
}

export interface DeviceFilters {
  readonly site?: string;
  readonly building?: string;
  readonly room?: string;
  readonly type?: string;
  readonly search?: string;
}

export interface ReadingsQuery {
  readonly device: string;
  readonly measurement?: string;
  readonly from?: number;
  readonly to?: number;
  readonly step?: number;
  readonly agg?: 'avg' | 'min' | 'max' | 'last';
  readonly limit?: number;
}

export type AlarmKind = 'offline' | 'battery_low' | 'severity' | 'backlog' | 'failing';
export type AlarmState = 'raised' | 'acknowledged' | 'cleared';

/** An alarm (docs/api.md): one per subject, kind and aspect while open. */
export interface Alarm {
  readonly id: string;
  readonly kind: AlarmKind;
  readonly subjectKind: 'device' | 'sink';
  readonly subject: string;
  readonly aspect: string;
  readonly severity: 'warning' | 'critical';
  readonly state: AlarmState;
  readonly message: string;
  readonly raisedAt: number;
  readonly lastSeenAt: number;
  readonly acknowledgedAt?: number;
  readonly acknowledgedBy?: string;
  readonly note?: string;
  readonly clearedAt?: number;
  readonly clearedBy?: string;
  readonly reminders: number;
}

export interface AlarmCounts {
  readonly raised: number;
  readonly acknowledged: number;
  readonly byKind: Readonly<Record<string, { readonly raised: number; readonly acknowledged: number }>>;
}

export interface AlarmQuery {
  readonly state?: AlarmState | 'open';
  readonly kind?: AlarmKind;
  readonly subjectKind?: 'device' | 'sink';
  readonly subject?: string;
  readonly limit?: number;
}

// ---------------------------------------------------------------- errors

/** An error answer (`{error: {code, message, path?}}`), or a failure to reach the server (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly path: string | undefined;

  constructor(status: number, code: string, message: string, path?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.path = path;
  }
}

/** An ApiError from anything thrown (a bug in the page becomes `BH_DASHBOARD`). */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, 'BH_DASHBOARD', e instanceof Error ? e.message : String(e));
}

export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}

let unauthorizedListener: (() => void) | undefined;

/** Called when a data call answers 401 (the session ended, was revoked, or Backhaul restarted). */
export function onUnauthorized(listener: (() => void) | undefined): void {
  unauthorizedListener = listener;
}

// ---------------------------------------------------------------- plumbing

const BASE = 'api/v1';

type Query = Readonly<Record<string, string | number | boolean | undefined>>;

interface RequestOptions {
  readonly query?: Query;
  readonly body?: unknown;
  readonly signal?: AbortSignal | undefined;
  /** Session calls: a 401 is an answer, not a reason to leave the page. */
  readonly quiet401?: boolean;
}

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === '') continue;
    params.set(k, String(v));
  }
  const qs = params.toString();
  return `${BASE}${path}${qs ? `?${qs}` : ''}`;
}

function isErrorBody(v: unknown): v is { error: { code: string; message: string; path?: string } } {
  if (typeof v !== 'object' || v === null || !('error' in v)) return false;
  const e = v.error;
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string';
}

async function request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  // No content-type without a body: Fastify refuses an empty body declared as JSON.
  if (o.body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(o.body);
  }
  if (o.signal) init.signal = o.signal;
  let res: Response;
  try {
    res = await fetch(url(path, o.query), init);
  } catch (e) {
    if (isAbort(e)) throw e;
    throw new ApiError(0, 'BH_DASHBOARD_NETWORK', `Backhaul cannot be reached (${e instanceof Error ? e.message : String(e)})`);
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!res.ok) {
    if (res.status === 401 && !o.quiet401) unauthorizedListener?.();
    if (isErrorBody(parsed)) throw new ApiError(res.status, parsed.error.code, parsed.error.message, parsed.error.path);
    const snippet = text.trim().slice(0, 200);
    throw new ApiError(res.status, `HTTP_${res.status}`, snippet || res.statusText || 'request failed');
  }
  if (res.status === 204 || text === '') return undefined as T;
  if (parsed === undefined) throw new ApiError(res.status, 'BH_DASHBOARD_BAD_ANSWER', `not JSON: ${text.slice(0, 120)}`);
  return parsed as T;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- session

/** Who is logged in; resolves undefined when nobody is (401). */
export async function getSession(signal?: AbortSignal): Promise<Session | undefined> {
  try {
    return await request<Session>('GET', '/session', { signal, quiet401: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return undefined;
    throw e;
  }
}

export function login(token: string): Promise<Session> {
  return request<Session>('POST', '/session', { body: { token }, quiet401: true });
}

export function logout(): Promise<void> {
  return request<void>('DELETE', '/session', { quiet401: true });
}

// ---------------------------------------------------------------- devices

export function listDevices(f: DeviceFilters = {}, signal?: AbortSignal): Promise<DeviceList> {
  return request<DeviceList>('GET', '/devices', {
    query: { site: f.site, building: f.building, room: f.room, type: f.type, search: f.search?.trim() },
    signal,
  });
}

export function getDevice(id: string, signal?: AbortSignal): Promise<DeviceDetail> {
  return request<DeviceDetail>('GET', `/devices/${enc(id)}`, { signal });
}

export function updateDeviceConfig(id: string, config: JsonObject): Promise<Device> {
  return request<Device>('PATCH', `/devices/${enc(id)}`, { body: { config } });
}

export function setDeviceEnabled(id: string, enabled: boolean): Promise<Device> {
  return request<Device>('POST', `/devices/${enc(id)}/${enabled ? 'enable' : 'disable'}`);
}

/** A LoRaWAN downlink's bytes as given (hex) and its port, instead of the device's codec encoding the order. */
export interface RawDownlink {
  readonly hex: string;
  readonly fPort: number;
}

export function sendCommand(id: string, order: string, params: JsonObject = {}, downlink?: RawDownlink): Promise<Command> {
  return request<Command>('POST', `/devices/${enc(id)}/commands`, { body: { order, params, ...(downlink ? { downlink } : {}) } });
}

export function listDeviceTypes(signal?: AbortSignal): Promise<DeviceType[]> {
  return request<DeviceType[]>('GET', '/device-types', { signal });
}

// ---------------------------------------------------------------- historian

export async function getLatest(id: string, signal?: AbortSignal): Promise<LatestValue[]> {
  const r = await request<{ values: LatestValue[] }>('GET', `/devices/${enc(id)}/latest`, { signal });
  return r.values;
}

/** Ids per `GET /latest` call: the server takes up to 500; 100 keeps each URL short. */
const LATEST_PER_CALL = 100;

/** The latest values of many devices (`GET /latest`), a few calls in parallel for a long list. */
export async function getLatestMany(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, LatestValue[]>> {
  const chunks: string[][] = [];
  for (let i = 0; i < ids.length; i += LATEST_PER_CALL) chunks.push(ids.slice(i, i + LATEST_PER_CALL));
  const answers = await Promise.all(chunks.map((c) => request<{ devices: Record<string, LatestValue[]> }>('GET', '/latest', { query: { devices: c.join(',') }, signal })));
  const out = new Map<string, LatestValue[]>();
  for (const a of answers) for (const [id, values] of Object.entries(a.devices)) out.set(id, values);
  return out;
}

export async function getReadings(q: ReadingsQuery, signal?: AbortSignal): Promise<Reading[]> {
  const r = await request<{ items: Reading[] }>('GET', '/readings', { query: { ...q }, signal });
  return r.items;
}

export function listEvents(limit = 100, signal?: AbortSignal): Promise<HubEvent[]> {
  return request<HubEvent[]>('GET', '/events', { query: { limit }, signal });
}

/** The live feed: `event: hub-event`, `data: Event` (the cookie goes along: same origin). */
export const EVENT_STREAM_URL = `${BASE}/events/stream`;
export const EVENT_STREAM_NAME = 'hub-event';

// ---------------------------------------------------------------- alarms

export async function listAlarms(q: AlarmQuery = {}, signal?: AbortSignal): Promise<Alarm[]> {
  const r = await request<{ items: Alarm[] }>('GET', '/alarms', { query: { ...q }, signal });
  return r.items;
}

export function getAlarmCounts(signal?: AbortSignal): Promise<AlarmCounts> {
  return request<AlarmCounts>('GET', '/alarms/counts', { signal });
}

export function ackAlarm(id: string, note: string): Promise<Alarm> {
  return request<Alarm>('POST', `/alarms/${enc(id)}/ack`, { body: note.trim() ? { note: note.trim() } : {} });
}

export function clearAlarm(id: string, note: string): Promise<Alarm> {
  return request<Alarm>('POST', `/alarms/${enc(id)}/clear`, { body: note.trim() ? { note: note.trim() } : {} });
}

// ---------------------------------------------------------------- sinks

export function listSinks(signal?: AbortSignal): Promise<SinkStatus[]> {
  return request<SinkStatus[]>('GET', '/sinks', { signal });
}
