// Bulk provisioning from a manifest: CSV with a header row, or JSON lines, one device a row. Importing is idempotent
// (the same file twice changes nothing the second time), reports a result per row with its line number, and a bad
// row never stops the good ones. See README.md for the format.
//
// The CSV reader is our own (~60 lines): RFC 4180 quoting ("" inside quotes, delimiters and newlines inside quoted
// fields), CRLF or LF, a UTF-8 BOM, `,` `;` or tab as delimiter (told from the header: French spreadsheets write
// `;`), blank lines and `#` comment lines skipped. A library (csv-parse) would do the same but would be a new
// dependency for a few dozen lines, and we need each record's starting line number for the report anyway.
import { BackhaulError } from '../core/errors.js';
import { durationMs } from '../core/duration.js';
import { suggest } from '../core/config/validate.js';
import { hashPassword, verifyPassword } from './credentials.js';
import { checkClaimCode, openClaimWindows, type ClaimWindow } from './provision.js';
import type { DeviceStore } from './store/index.js';
import { identify } from './store/rules.js';
import type { Change, DeviceInput } from './store/devices.js';
import type { AuditInput } from './store/audit.js';
import { shown } from '../core/errors.js';
import { ID_KINDS, guessIdKind, isJsonObject, normaliseId, type IdKind } from './types.js';

export type ManifestFormat = 'csv' | 'jsonl';

/** The manifest fields, as written in a CSV header or as JSON keys. */
export const MANIFEST_COLUMNS = [
  'id',
  'kind',
  'type',
  'site',
  'building',
  'room',
  'description',
  'tags',
  'enabled',
  'maxSilent',
  'batteryFloor',
  'config',
  'claimCode',
] as const;
export type ManifestColumn = (typeof MANIFEST_COLUMNS)[number];

export type RowStatus = Change | 'error';

export interface RowResult {
  /** 1-based line where the row starts. */
  readonly line: number;
  /** Canonical id, when the row got that far. */
  readonly id?: string;
  readonly status: RowStatus;
  /** Fields an update changed (or would change, in a dry run). */
  readonly changed?: readonly string[];
  /** Why the row failed; `path` names the column (or `config.<key>`). */
  readonly error?: BackhaulError;
}

export interface ImportReport {
  readonly format: ManifestFormat;
  readonly dryRun: boolean;
  readonly rows: readonly RowResult[];
  readonly counts: Readonly<Record<RowStatus, number>>;
  /** With `claimWindowMs`: the devices of the file whose claim window was opened, and until when. */
  readonly claimWindow?: ClaimWindow;
}

export interface ImportOptions {
  readonly format?: ManifestFormat;
  /** Report what would happen; change nothing. */
  readonly dryRun?: boolean;
  /** For the audit log: `cli:alice`. */
  readonly actor?: string;
  /** For the audit log: the file name. */
  readonly source?: string;
  /** Open the claim window of the file's devices still waiting for their first password, for this long. */
  readonly claimWindowMs?: number;
  /** For the claim window (default Date.now()). */
  readonly now?: number;
}

// ---------------------------------------------------------------- CSV

export interface CsvRecord {
  readonly line: number;
  readonly cells: string[];
  /** Set when the record is malformed (the cells are what could be read). */
  readonly error?: string;
}

function pickDelimiter(headerLine: string): string {
  const count = (c: string) => headerLine.split(c).length - 1;
  const counts = [',', ';', '\t'].map((c) => [c, count(c)] as const).sort((a, b) => b[1] - a[1]);
  return counts[0]![1] > 0 ? counts[0]![0] : ',';
}

/** Records of a CSV text, each with the line it starts on. Unquoted cells are trimmed; quoted ones kept exactly. */
export function parseCsv(text: string, delimiter?: string): CsvRecord[] {
  const src = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const firstLine = src.split(/\r\n|\n|\r/).find((l) => l.trim() !== '' && !l.trimStart().startsWith('#')) ?? '';
  const delim = delimiter ?? pickDelimiter(firstLine);
  const records: CsvRecord[] = [];
  const eol = /\r\n|\n|\r/g;
  let i = 0;
  let line = 1;
  const n = src.length;
  const atEol = () => src[i] === '\n' || src[i] === '\r';
  const eatEol = () => {
    if (src[i] === '\r' && src[i + 1] === '\n') i++;
    i++;
    line++;
  };
  while (i < n) {
    // blank and comment lines
    eol.lastIndex = i;
    const rest = src.slice(i, eol.exec(src)?.index ?? n);
    if (rest.trim() === '' || rest.trimStart().startsWith('#')) {
      i += rest.length;
      if (i < n) eatEol();
      continue;
    }
    const start = line;
    const cells: string[] = [];
    let error: string | undefined;
    for (;;) {
      let cell = '';
      // leading blanks before a quote are allowed: `a, "b"`
      let j = i;
      while (src[j] === ' ' || src[j] === '\t') j++;
      if (src[j] === '"') {
        i = j + 1;
        const openLine = line;
        for (;;) {
          if (i >= n) {
            error ??= `a quoted field opened on line ${openLine} is never closed`;
            break;
          }
          const c = src[i]!;
          if (c === '"') {
            if (src[i + 1] === '"') {
              cell += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\r' || c === '\n') {
            cell += '\n';
            eatEol();
            continue;
          }
          cell += c;
          i++;
        }
        while (src[i] === ' ' || src[i] === '\t') i++;
        if (i < n && src[i] !== delim && !atEol()) {
          error ??= `unexpected ${shown(src[i]!)} after a closing quote (double a quote inside a quoted field: "")`;
          while (i < n && src[i] !== delim && !atEol()) cell += src[i++];
        }
      } else {
        while (i < n && src[i] !== delim && !atEol()) cell += src[i++];
        cell = cell.trim();
      }
      cells.push(cell);
      if (i < n && src[i] === delim) {
        i++;
        continue;
      }
      break;
    }
    if (i < n) eatEol();
    records.push(error === undefined ? { line: start, cells } : { line: start, cells, error });
  }
  return records;
}

// ---------------------------------------------------------------- rows → inputs

type Raw = Partial<Record<ManifestColumn, unknown>>;

function columnKey(name: string): string {
  return name.toLowerCase().replace(/[\s_-]/g, '');
}

const BY_KEY = new Map<string, ManifestColumn>(MANIFEST_COLUMNS.map((c) => [columnKey(c), c]));

function unknownColumn(name: string, path: string): BackhaulError {
  return new BackhaulError('BH_MANIFEST_FORMAT', `unknown column ${shown(name)}${suggest(name, MANIFEST_COLUMNS)}; columns: ${MANIFEST_COLUMNS.join(', ')}`, {
    path,
  });
}

function fieldError(column: ManifestColumn, message: string): BackhaulError {
  return new BackhaulError('BH_DEVICE_FIELD', message, { path: column });
}

function str(v: unknown, column: ManifestColumn): string | undefined {
  if (v === undefined) return undefined;
  if (v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && column !== 'id') return String(v);
  throw fieldError(column, `must be a string, not ${Array.isArray(v) ? 'an array' : typeof v}`);
}

/** A value as it was written, for messages. */
function asText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function bool(v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === null || v === '') return true;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (['true', 'yes', 'y', '1', 'on'].includes(s)) return true;
    if (['false', 'no', 'n', '0', 'off'].includes(s)) return false;
  }
  throw fieldError('enabled', `${shown(asText(v))} is not a yes/no value (true, false, yes, no, 1, 0)`);
}

function duration(v: unknown): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === null || v === '') return null;
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  if (typeof v === 'string') {
    try {
      const ms = durationMs(v.trim());
      if (ms > 0) return ms;
    } catch {
      /* reported below */
    }
  }
  throw fieldError('maxSilent', `${shown(asText(v))} is not a duration: write e.g. "30m", "90s", "2h", "1d"`);
}

function volts(v: unknown): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === null || v === '') return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*[0-9]+(\.[0-9]+)?\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n)) throw fieldError('batteryFloor', `${shown(asText(v))} is not a number of volts (e.g. 2.4)`);
  return n;
}

function tags(v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (v === null || v === '') return [];
  if (typeof v === 'string') return v.split(';');
  if (Array.isArray(v) && v.every((t): t is string => typeof t === 'string')) return v;
  throw fieldError('tags', 'must be a list of strings, or one string with tags separated by ";"');
}

function config(v: unknown): unknown {
  if (v === undefined) return undefined;
  if (v === null || v === '') return {};
  let o: unknown = v;
  if (typeof v === 'string') {
    try {
      o = JSON.parse(v);
    } catch {
      throw new BackhaulError('BH_DEVICE_CONFIG', 'is not valid JSON', { path: 'config' });
    }
  }
  if (!isJsonObject(o)) throw new BackhaulError('BH_DEVICE_CONFIG', 'must be a JSON object', { path: 'config' });
  return o;
}

/** The DeviceInput a manifest row asks for; a column left out is not touched, an empty one is cleared. */
export function rowInput(raw: Raw): DeviceInput {
  const id = str(raw.id, 'id');
  if (id === undefined || id.trim() === '') throw new BackhaulError('BH_DEVICE_ID', 'the id is empty', { path: 'id' });
  const location: { site?: string; building?: string; room?: string } = {};
  for (const k of ['site', 'building', 'room'] as const) {
    const v = str(raw[k], k);
    if (v !== undefined) location[k] = v;
  }
  const thresholds: { maxSilentMs?: number | null; batteryFloor?: number | null } = {};
  const ms = duration(raw.maxSilent);
  if (ms !== undefined) thresholds.maxSilentMs = ms;
  const floor = volts(raw.batteryFloor);
  if (floor !== undefined) thresholds.batteryFloor = floor;
  const kind = str(raw.kind, 'kind');
  const type = str(raw.type, 'type');
  const description = str(raw.description, 'description');
  const t = tags(raw.tags);
  const enabled = bool(raw.enabled);
  const c = config(raw.config);
  return {
    id,
    ...(kind !== undefined && kind.trim() !== '' ? { kind: kind.trim() } : {}),
    ...(type !== undefined && type.trim() !== '' ? { type: type.trim() } : {}),
    ...(Object.keys(location).length > 0 ? { location } : {}),
    ...(description !== undefined ? { description } : {}),
    ...(t !== undefined ? { tags: t } : {}),
    ...(enabled !== undefined ? { enabled } : {}),
    ...(Object.keys(thresholds).length > 0 ? { thresholds } : {}),
    ...(c !== undefined ? { config: c } : {}),
  };
}

/** Model paths (`location.room`) → manifest columns (`room`), so a row's error names the column to fix. */
export function columnOf(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  if (path.startsWith('location.')) return path.slice('location.'.length);
  if (path === 'thresholds.maxSilentMs') return 'maxSilent';
  if (path === 'thresholds.batteryFloor') return 'batteryFloor';
  return path;
}

function inColumn(e: unknown): BackhaulError {
  if (!(e instanceof BackhaulError)) throw e;
  const column = columnOf(e.path);
  return column === e.path ? e : new BackhaulError(e.code, e.detail, column === undefined ? {} : { path: column });
}

interface ParsedRow {
  readonly line: number;
  readonly raw?: Raw;
  readonly error?: BackhaulError;
}

/** The format of a manifest: `.jsonl`/`.ndjson` files and text starting with `{` are JSON lines; the rest CSV. */
export function detectFormat(text: string, fileName?: string): ManifestFormat {
  if (fileName !== undefined && /\.(jsonl|ndjson)$/i.test(fileName)) return 'jsonl';
  if (fileName !== undefined && /\.(csv|tsv|txt)$/i.test(fileName)) return 'csv';
  const first = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/).find((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  return first?.trimStart().startsWith('{') ? 'jsonl' : 'csv';
}

/** Rows of a CSV manifest. A bad header (unknown or repeated column, no `id`) is BH_MANIFEST_FORMAT for the file. */
export function csvRows(text: string): ParsedRow[] {
  const records = parseCsv(text);
  const header = records[0];
  if (!header) throw new BackhaulError('BH_MANIFEST_FORMAT', 'the manifest is empty: it needs a header row naming its columns (id, type, ...)');
  if (header.error) throw new BackhaulError('BH_MANIFEST_FORMAT', header.error, { path: `line ${header.line}` });
  const columns: ManifestColumn[] = [];
  for (const name of header.cells) {
    const col = BY_KEY.get(columnKey(name));
    if (!col) throw unknownColumn(name, `line ${header.line}`);
    if (columns.includes(col)) throw new BackhaulError('BH_MANIFEST_FORMAT', `the column ${col} appears twice`, { path: `line ${header.line}` });
    columns.push(col);
  }
  if (!columns.includes('id')) throw new BackhaulError('BH_MANIFEST_FORMAT', 'the header has no id column', { path: `line ${header.line}` });
  return records.slice(1).map((r): ParsedRow => {
    if (r.error) return { line: r.line, error: new BackhaulError('BH_MANIFEST_FORMAT', r.error) };
    if (r.cells.length !== columns.length) {
      return { line: r.line, error: new BackhaulError('BH_MANIFEST_FORMAT', `${r.cells.length} cells, but the header has ${columns.length} columns`) };
    }
    const raw: Raw = {};
    columns.forEach((c, k) => (raw[c] = r.cells[k]));
    return { line: r.line, raw };
  });
}

/** Rows of a JSON-lines manifest: one object a line, keys as the CSV columns. */
export function jsonlRows(text: string): ParsedRow[] {
  const rows: ParsedRow[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r\n|\n|\r/)
    .forEach((l, k) => {
      const line = k + 1;
      if (l.trim() === '' || l.trimStart().startsWith('#')) return;
      let o: unknown;
      try {
        o = JSON.parse(l);
      } catch {
        rows.push({ line, error: new BackhaulError('BH_MANIFEST_FORMAT', 'the line is not valid JSON') });
        return;
      }
      if (!isJsonObject(o)) {
        rows.push({ line, error: new BackhaulError('BH_MANIFEST_FORMAT', 'the line must be a JSON object') });
        return;
      }
      const raw: Raw = {};
      for (const [key, v] of Object.entries(o)) {
        const col = BY_KEY.get(columnKey(key));
        if (!col) {
          rows.push({ line, error: unknownColumn(key, key) });
          return;
        }
        raw[col] = v;
      }
      rows.push({ line, raw });
    });
  return rows;
}

/**
 * A row without a kind whose id's form does not tell (bare hex) may still name a device already registered: take
 * that device's kind, so `id,room` rows can move OpenTRV valves. Otherwise the input is returned as it was.
 */
function normalised(kind: IdKind, raw: string): string | undefined {
  try {
    return normaliseId(kind, raw);
  } catch {
    return undefined;
  }
}

async function withKnownKind(store: DeviceStore, input: DeviceInput): Promise<DeviceInput> {
  if ((input.kind !== undefined && input.kind !== '') || guessIdKind(input.id) !== undefined) return input;
  for (const kind of ID_KINDS) {
    const id = normalised(kind, input.id);
    if (id !== undefined && (await store.get(id))?.kind === kind) return { ...input, kind };
  }
  return input;
}

/**
 * Validate and apply a manifest to a store. Each row is created, updated, left unchanged or refused; a refused row
 * names its column. A device listed twice is refused on its later line (BH_MANIFEST_DUPLICATE), so a second
 * import of the same file is all `unchanged`. With `dryRun` nothing is written and nothing audited.
 */
export async function importManifest(store: DeviceStore, text: string, opts: ImportOptions = {}): Promise<ImportReport> {
  const format = opts.format ?? detectFormat(text, opts.source);
  const dryRun = opts.dryRun ?? false;
  const parsed = format === 'csv' ? csvRows(text) : jsonlRows(text);
  const results: Array<RowResult | undefined> = parsed.map(() => undefined);
  const inputs: DeviceInput[] = [];
  const slots: number[] = [];
  /** The claim code a row gives, by slot ('' clears it); rows without the column leave it alone. */
  const codes = new Map<number, string>();
  const seen = new Map<string, number>();
  for (const [k, row] of parsed.entries()) {
    if (row.error || !row.raw) {
      results[k] = { line: row.line, status: 'error', error: row.error ?? new BackhaulError('BH_MANIFEST_FORMAT', 'unreadable row') };
      continue;
    }
    let input: DeviceInput;
    let id: string;
    try {
      input = await withKnownKind(store, rowInput(row.raw));
      id = identify(input).id;
      const code = str(row.raw.claimCode, 'claimCode');
      if (code !== undefined) codes.set(k, code.trim() === '' ? '' : checkClaimCode(code));
    } catch (e) {
      results[k] = { line: row.line, status: 'error', error: inColumn(e) };
      continue;
    }
    const first = seen.get(id);
    if (first !== undefined) {
      results[k] = {
        line: row.line,
        id,
        status: 'error',
        error: new BackhaulError('BH_MANIFEST_DUPLICATE', `device ${shown(id)} is already on line ${first}`, { path: 'id' }),
      };
      continue;
    }
    seen.set(id, row.line);
    inputs.push(input);
    slots.push(k);
  }
  const outcomes = await store.upsertMany(inputs, { dryRun });
  for (const [j, o] of outcomes.entries()) {
    const k = slots[j]!;
    const line = parsed[k]!.line;
    if (!('ok' in o)) {
      results[k] = { line, id: identify(inputs[j]!).id, status: 'error', error: inColumn(o.error) };
      continue;
    }
    let status: RowStatus = o.ok.change;
    let changed = o.ok.change === 'updated' ? [...o.ok.changed] : [];
    const code = codes.get(k);
    if (code !== undefined) {
      // Only the hash is kept, so "unchanged" means the stored hash matches the code.
      const had = o.ok.device.claim?.codeHash;
      const same = code === '' ? had === undefined : had !== undefined && (await verifyPassword(code, had));
      if (!same) {
        try {
          if (o.ok.device.source === 'config') throw new BackhaulError('BH_DEVICE_READ_ONLY', 'the device is declared in the config file', { path: 'claimCode' });
          if (!dryRun) await store.setClaimCode(o.ok.device.id, code === '' ? undefined : await hashPassword(code));
          if (status === 'unchanged') status = 'updated';
          if (status === 'updated') changed = [...changed, 'claimCode'];
        } catch (e) {
          results[k] = { line, id: o.ok.device.id, status: 'error', error: inColumn(e) };
          continue;
        }
      }
    }
    results[k] = { line, id: o.ok.device.id, status, ...(status === 'updated' ? { changed } : {}) };
  }
  const rows = results.map((r, k) => r ?? { line: parsed[k]!.line, status: 'error' as const });
  const counts: Record<RowStatus, number> = { created: 0, updated: 0, unchanged: 0, error: 0 };
  for (const r of rows) counts[r.status]++;
  if (!dryRun) {
    const audits: AuditInput[] = rows
      .filter((r) => r.status === 'created' || r.status === 'updated')
      .map((r) => ({
        actor: opts.actor ?? 'manifest',
        action: 'device.import',
        ...(r.id !== undefined ? { device: r.id } : {}),
        detail: { line: r.line, status: r.status, ...(opts.source !== undefined ? { file: opts.source } : {}), ...(r.changed ? { changed: [...r.changed] } : {}) },
        result: 'ok',
      }));
    if (audits.length > 0) await store.appendAuditMany(audits);
  }
  let claimWindow: ClaimWindow | undefined;
  if (opts.claimWindowMs !== undefined && !dryRun) {
    const pending = [];
    for (const r of rows) {
      if (r.status === 'error' || r.id === undefined) continue;
      const d = await store.get(r.id);
      if (d && d.source === 'registry' && d.credentials?.passwordIssued !== true) pending.push(d);
    }
    claimWindow = await openClaimWindows(store, pending, {
      forMs: opts.claimWindowMs,
      actor: opts.actor ?? 'manifest',
      now: opts.now ?? Date.now(),
      via: 'import',
    });
  }
  return { format, dryRun, rows, counts, ...(claimWindow ? { claimWindow } : {}) };
}
