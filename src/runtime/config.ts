// Config loading: JSONC text → top-level schema → secrets → each driver's own schema → cross-references.
// Every problem found is reported together (ConfigErrors), each with its code and JSON path. Nothing starts until
// the whole config is valid. The file is never rewritten.
import { isInlinePem, readServerTls, TlsServerOptions } from '../core/tls-server.js';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import type { TSchema } from '@sinclair/typebox';
import type { ConfigProblem, DecoderDefinition, DriverRegistry, InputDefinition, SinkDefinition, StageDefinition } from '../core/driver.js';
import { BackhaulError, ConfigErrors, isBackhaulError, joinPath } from '../core/errors.js';
import { ConfigFile, Match, OutboxOptions } from '../core/config/schema.js';
import { SecretStore, isSecretRef } from '../core/config/secrets.js';
import type { BrokerSyncConfig } from '../core/config/broker-sync.js';
import type { StoreConfig } from '../core/config/store.js';
import { SchemaValidator, suggest } from '../core/config/validate.js';
import { DeviceTypes } from '../devices/device-types.js';
import { declaredProblems, type DeclaredDeviceConfig } from '../devices/declared.js';
import { gatewayProblems, type GatewayConfig } from '../devices/gateways.js';
import type { LearnOptions } from '../devices/gate.js';

export interface InputSpec {
  readonly id: string;
  readonly def: InputDefinition;
  readonly options: unknown;
  readonly decoder: { readonly def: DecoderDefinition; readonly options: unknown };
}

export interface SinkSpec {
  readonly id: string;
  readonly def: SinkDefinition;
  readonly options: unknown;
  readonly outbox: OutboxOptions;
}

export interface StageSpec {
  readonly def: StageDefinition;
  readonly options: unknown;
  /** Config path, e.g. `routes[2].stages[0]`. */
  readonly path: string;
}

export interface RouteSpec {
  readonly name: string;
  readonly index: number;
  readonly match: Match;
  readonly stages: readonly StageSpec[];
  readonly to: readonly string[];
}

/** `devices.learn` with its defaults; undefined when turned off. */
function learnOf(l: { enabled?: boolean; factor?: number; samples?: number; minMs?: number; maxMs?: number } | undefined): LearnOptions | undefined {
  if (l?.enabled === false) return undefined;
  const minMs = l?.minMs ?? 300_000;
  return { factor: l?.factor ?? 3, samples: l?.samples ?? 5, minMs, maxMs: Math.max(minMs, l?.maxMs ?? 172_800_000) };
}

export interface LoadedConfig {
  /** The config file, or a label such as `demo`. */
  readonly source: string;
  /** Folder relative paths are resolved against. */
  readonly dir: string;
  readonly dataDir: string;
  readonly logLevel: string | undefined;
  readonly devices: {
    readonly unknown: 'register' | 'quarantine' | 'drop';
    readonly refreshMs: number;
    readonly topics: { readonly prefix?: string; readonly homeSite?: string };
    readonly commandTimeoutMs: number;
    /** Secrets resolved. */
    readonly declared: readonly DeclaredDeviceConfig[];
    /** Device logins that may carry readings for other devices. */
    readonly gateways: readonly GatewayConfig[];
    /** Bound on device.unknown events: a token bucket. */
    readonly unknownEvents: { readonly burst: number; readonly perMinute: number };
    /** Learning silence thresholds; undefined: off. */
    readonly learn: LearnOptions | undefined;
  };
  readonly alarms: { readonly remindEveryMs?: number };
  /** LoRaWAN payload codecs: name → absolute file path. */
  readonly codecs: Readonly<Record<string, string>>;
  /** Undefined: no HTTP API. */
  readonly api:
    | {
        readonly host: string;
        readonly port: number;
        readonly bootstrap: boolean;
        /** Serve mosquitto-go-auth's HTTP backend (src/api/go-auth.ts). */
        readonly mosquittoGoAuth: boolean;
        readonly historian?: string;
        readonly trustProxy?: readonly string[];
        /** HTTPS: file paths absolute, the key's secret resolved. */
        readonly tls?: TlsServerOptions;
      }
    | undefined;
  /** An external Mosquitto kept in step with the registry (src/runtime/dynsec.ts); undefined: none. */
  readonly brokerSync: BrokerSyncConfig | undefined;
  /** Where the device registry is kept (SQLite in the data folder by default). */
  readonly store: StoreConfig;
  readonly inputs: readonly InputSpec[];
  readonly sinks: readonly SinkSpec[];
  readonly routes: readonly RouteSpec[];
  /** Secret values, for the logger to scrub. */
  readonly secretValues: readonly string[];
  /** The config as written, secrets still as `{"secret": NAME}`: safe to print. */
  readonly redacted: unknown;
  /** Things worth saying that do not stop a start (a sink no route uses). */
  readonly warnings: readonly string[];
}

export interface LoadOptions {
  readonly registry: DriverRegistry;
  readonly env?: NodeJS.ProcessEnv;
  /** Device types declared devices are checked against (default: the built-in ones). */
  readonly deviceTypes?: DeviceTypes;
}

const validator = new SchemaValidator();

/** `inputs.x` + `topics[1]` → `inputs.x.topics[1]`. */
function subPath(base: string, rel: string): string {
  if (!rel) return base;
  return rel.startsWith('[') ? `${base}${rel}` : `${base}.${rel}`;
}

/**
 * Schema first; only options that pass it are handed to the driver's own `check`. `ignore` drops errors at paths
 * already reported otherwise (a secret that could not be resolved holds a stand-in value).
 */
function validateOptions(
  def: { readonly options: TSchema; check?(o: unknown): readonly ConfigProblem[] },
  options: unknown,
  path: string,
  ignore: (path: string) => boolean = () => false,
): BackhaulError[] {
  const errs = validator.validate(def.options, options, path).filter((e) => !ignore(e.path ?? ''));
  if (errs.length > 0 || !def.check) return errs;
  return def
    .check(options)
    .map((p) => new BackhaulError('BH_CONFIG_SCHEMA', p.message, { path: subPath(path, p.path) }))
    .filter((e) => !ignore(e.path ?? ''));
}

/** True when an input's options schema takes the shared `tls` section (src/core/tls-server.ts). */
function servesTls(schema: unknown): boolean {
  const props = (schema as { properties?: Record<string, { tlsServer?: unknown } | undefined> } | null)?.properties;
  return props?.['tls']?.tlsServer === true;
}

/** The problems reading a `tls` section's files finds (BH_TLS_FILE), none when they make a context. */
function tlsProblems(t: TlsServerOptions, resolvePath: (p: string) => string, path: string, ignore: (path: string) => boolean): BackhaulError[] {
  if (ignore(joinPath(path, 'key'))) return []; // the key's secret is missing, which is reported
  try {
    readServerTls(t, resolvePath, path);
    return [];
  } catch (e) {
    if (isBackhaulError(e)) return [e];
    throw e;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Driver instances that have the shape the top-level schema asks for; the others are reported by it already. */
function instances(v: unknown): Record<string, Record<string, unknown>> {
  if (!isObject(v)) return {};
  const out: Record<string, Record<string, unknown>> = {};
  for (const [id, inst] of Object.entries(v)) if (isObject(inst) && typeof inst['type'] === 'string' && inst['type'] !== '') out[id] = inst;
  return out;
}

/** Stand-in for a secret that could not be resolved (its error is reported): a plausible value, so the options around it are still checked. */
const UNRESOLVED_SECRET = 'unresolved-secret';

export function loadConfigFile(file: string, opts: LoadOptions): LoadedConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new ConfigErrors([new BackhaulError('BH_CONFIG_READ', `cannot read config file ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)]);
  }
  return loadConfigText(text, abs, opts);
}

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${col}`;
}

export function loadConfigText(text: string, file: string, opts: LoadOptions): LoadedConfig {
  const errors: ParseError[] = [];
  const raw: unknown = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    throw new ConfigErrors(
      errors.map((e) => new BackhaulError('BH_CONFIG_SYNTAX', `${file}, ${lineCol(text, e.offset)}: ${printParseErrorCode(e.error)}`)),
    );
  }
  return buildConfig(raw, { source: file, dir: dirname(file) }, opts);
}

/** Validate a parsed config tree (from a file or built in code, like the demo's). */
export function buildConfig(raw: unknown, where: { source: string; dir: string }, opts: LoadOptions): LoadedConfig {
  const reg = opts.registry;
  const env = opts.env ?? process.env;
  // Work on a copy: validation fills in defaults, and `redacted` must stay as written.
  const top: unknown = structuredClone(raw);
  // Every stage runs even when an earlier one found problems, so all of them are reported in one pass; each stage
  // looks only at the parts that have the shape the top-level schema asks for (the rest it has reported).
  const topErrors = validator.validate(ConfigFile, top, '');
  const errs: BackhaulError[] = [...topErrors];
  const topBad = (path: string) => topErrors.some((e) => e.path !== undefined && (e.path === path || e.path.startsWith(`${path}.`) || e.path.startsWith(`${path}[`)));
  const cfg = (isObject(top) ? top : {}) as {
    data?: string;
    secrets?: string;
    log?: { level?: string };
    devices?: {
      unknown?: 'register' | 'quarantine' | 'drop';
      refreshMs?: number;
      topics?: { prefix?: string; homeSite?: string };
      commandTimeoutMs?: number;
      declared?: DeclaredDeviceConfig[];
      gateways?: GatewayConfig[];
      unknownEvents?: { burst?: number; perMinute?: number };
      learn?: { enabled?: boolean; factor?: number; samples?: number; minMs?: number; maxMs?: number };
    };
    alarms?: { remindEveryMs?: number };
    codecs?: Record<string, string>;
    api?: { host?: string; port?: number; bootstrap?: boolean; mosquittoGoAuth?: boolean; historian?: string; trustProxy?: string[]; tls?: TlsServerOptions };
    brokerSync?: BrokerSyncConfig;
    store?: StoreConfig;
    inputs: Record<string, Record<string, unknown>>;
    sinks: Record<string, Record<string, unknown>>;
    // Only shapes the top-level schema accepted are trusted; the rest is looked at as unknown.
    routes: Array<{ name?: unknown; match?: unknown; stages: unknown[]; to: unknown[] }>;
  };

  const warnings: string[] = [];
  // Names as written, for references: a sink whose own entry is malformed is still there to be named. Without a
  // `sinks` (or `inputs`) object at all, references to them are not checked: that one error says it all.
  const inputIds = isObject(cfg.inputs) ? Object.keys(cfg.inputs) : undefined;
  const sinkIds = isObject(cfg.sinks) ? Object.keys(cfg.sinks) : undefined;
  cfg.inputs = instances(cfg.inputs);
  cfg.sinks = instances(cfg.sinks);
  cfg.routes = (Array.isArray(cfg.routes) ? cfg.routes : []).map((r: unknown) => {
    const o = isObject(r) ? r : {};
    const route: (typeof cfg.routes)[number] = {
      ...o,
      match: isObject(o['match']) ? o['match'] : undefined,
      stages: Array.isArray(o['stages']) ? (o['stages'] as unknown[]) : [],
      to: Array.isArray(o['to']) ? (o['to'] as unknown[]) : [],
    };
    return route;
  });

  // Secrets first, so driver schemas see the real (string) values.
  const secretsFile = typeof cfg.secrets === 'string' ? resolve(where.dir, cfg.secrets) : undefined;
  const secrets = new SecretStore(secretsFile, 'secrets', env);
  let fileFailed = false;
  try {
    secrets.load();
  } catch (e) {
    errs.push(e as BackhaulError);
    fileFailed = true;
  }
  /** Config paths holding a secret that could not be resolved: errors there are consequences, not news. */
  const unresolved: string[] = [];
  const isUnresolved = (path: string) => unresolved.some((u) => path === u || path.startsWith(`${u}.`) || path.startsWith(`${u}[`));
  const resolveSecrets = (node: unknown, path: string): unknown => {
    if (isSecretRef(node)) {
      try {
        return secrets.resolve(node.secret, path);
      } catch (e) {
        // With the credentials file unreadable (reported above), a secret missing from the environment is expected.
        if (!(fileFailed && isBackhaulError(e) && e.code === 'BH_SECRET_MISSING')) errs.push(e as BackhaulError);
        unresolved.push(path);
        return UNRESOLVED_SECRET;
      }
    }
    if (Array.isArray(node)) return node.map((v, i) => resolveSecrets(v, joinPath(path, i)));
    if (typeof node === 'object' && node !== null) {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) o[k] = resolveSecrets(v, joinPath(path, k));
      return o;
    }
    return node;
  };
  cfg.inputs = resolveSecrets(cfg.inputs, 'inputs') as typeof cfg.inputs;
  cfg.sinks = resolveSecrets(cfg.sinks, 'sinks') as typeof cfg.sinks;
  cfg.routes = resolveSecrets(cfg.routes, 'routes') as typeof cfg.routes;
  if (isObject(cfg.api)) cfg.api = resolveSecrets(cfg.api, 'api') as typeof cfg.api;
  if (isObject(cfg.brokerSync) && !topBad('brokerSync')) cfg.brokerSync = resolveSecrets(cfg.brokerSync, 'brokerSync') as BrokerSyncConfig;
  else cfg.brokerSync = undefined;
  if (isObject(cfg.store) && !topBad('store')) cfg.store = resolveSecrets(cfg.store, 'store') as StoreConfig;
  else cfg.store = { type: 'sqlite', schema: 'backhaul' };
  if (cfg.store.type === 'postgres' && cfg.store.url === undefined) errs.push(new BackhaulError('BH_CONFIG_SCHEMA', 'a postgres store needs a url (postgres://user@host:5432/db)', { path: 'store.url' }));
  if (cfg.store.type === 'sqlite' && (cfg.store.url !== undefined || cfg.store.password !== undefined)) {
    errs.push(new BackhaulError('BH_CONFIG_SCHEMA', 'the sqlite store is the data folder\'s file: it takes no url or password (did you mean "type": "postgres"?)', { path: 'store.type' }));
  }
  const declaredRaw = isObject(cfg.devices) && Array.isArray(cfg.devices.declared) ? cfg.devices.declared : [];
  const declared = resolveSecrets(declaredRaw, 'devices.declared') as DeclaredDeviceConfig[];
  errs.push(
    ...declaredProblems(declared, opts.deviceTypes ?? new DeviceTypes(), 'devices.declared', (i) => topBad(`devices.declared[${i}]`)).filter(
      (e) => !isUnresolved(e.path ?? ''),
    ),
  );
  const gateways = isObject(cfg.devices) && Array.isArray(cfg.devices.gateways) ? cfg.devices.gateways : [];
  const gw = gatewayProblems(gateways, 'devices.gateways');
  errs.push(...gw.errors);
  warnings.push(...gw.warnings);

  const known = (m: ReadonlyMap<string, unknown>) => [...m.keys()].sort();
  /** `typePath` is where the type name is written: `inputs.x.type`, or `inputs.x.decoder` for `"decoder": "name"`. */
  const lookup = <D>(kind: string, m: ReadonlyMap<string, D>, type: string, typePath: string): D | undefined => {
    const d = m.get(type);
    if (!d) {
      errs.push(
        new BackhaulError('BH_CONFIG_UNKNOWN_TYPE', `unknown ${kind} type "${type}"${suggest(type, known(m))}; known: ${known(m).join(', ')}`, {
          path: typePath,
        }),
      );
    }
    return d;
  };
  const options = (inst: Record<string, unknown>, common: readonly string[]): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(inst)) if (!common.includes(k)) o[k] = v;
    return o;
  };

  // inputs
  const inputs: InputSpec[] = [];
  for (const [id, inst] of Object.entries(cfg.inputs)) {
    const path = joinPath('inputs', id);
    const def = lookup('input', reg.inputs, String(inst['type']), joinPath(path, 'type'));
    const decoderRaw = inst['decoder'] ?? def?.defaultDecoder;
    let decoder: InputSpec['decoder'] | undefined;
    if (decoderRaw !== undefined) {
      const dPath = joinPath(path, 'decoder');
      let dInst: Record<string, unknown> | undefined;
      if (typeof decoderRaw === 'string') dInst = { type: decoderRaw };
      else if (typeof decoderRaw === 'object' && decoderRaw !== null && !Array.isArray(decoderRaw) && typeof (decoderRaw as { type?: unknown }).type === 'string')
        dInst = decoderRaw as Record<string, unknown>;
      else errs.push(new BackhaulError('BH_CONFIG_SCHEMA', 'must be a decoder type name or an object with a "type"', { path: dPath }));
      if (dInst) {
        const dDef = lookup('decoder', reg.decoders, String(dInst['type']), typeof decoderRaw === 'string' ? dPath : joinPath(dPath, 'type'));
        if (dDef) {
          const dOpts = options(dInst, ['type']);
          errs.push(...validateOptions(dDef, dOpts, dPath, isUnresolved));
          decoder = { def: dDef, options: dOpts };
        }
      }
    }
    if (def) {
      const o = options(inst, ['type', 'decoder']);
      const found = validateOptions(def, o, path, isUnresolved);
      errs.push(...found);
      // An input serving TLS (the shared `tls` section): its files are read now, so `check` names a missing one.
      if (found.length === 0 && servesTls(def.options) && isObject(o['tls'])) {
        errs.push(...tlsProblems(o['tls'] as TlsServerOptions, (f) => resolve(where.dir, f), joinPath(path, 'tls'), isUnresolved));
      }
      if (decoder) inputs.push({ id, def, options: o, decoder });
    }
  }

  // sinks
  const sinks: SinkSpec[] = [];
  for (const [id, inst] of Object.entries(cfg.sinks)) {
    const path = joinPath('sinks', id);
    const def = lookup('sink', reg.sinks, String(inst['type']), joinPath(path, 'type'));
    const outbox: unknown = inst['outbox'] ?? {};
    const outboxErrors = validator.validate(OutboxOptions, outbox, joinPath(path, 'outbox')).filter((e) => !isUnresolved(e.path ?? ''));
    errs.push(...outboxErrors);
    const { backlogAlert, maxItems } = outbox as OutboxOptions;
    if (outboxErrors.length === 0 && backlogAlert !== undefined && backlogAlert > maxItems) {
      // The outbox never holds more than maxItems, so the alert could never be raised.
      errs.push(new BackhaulError('BH_CONFIG_SCHEMA', `backlogAlert ${backlogAlert} is above maxItems ${maxItems}: the backlog can never reach it`, { path: joinPath(joinPath(path, 'outbox'), 'backlogAlert') }));
    }
    if (def) {
      const o = options(inst, ['type', 'outbox']);
      errs.push(...validateOptions(def, o, path, isUnresolved));
      sinks.push({ id, def, options: o, outbox: outbox as OutboxOptions });
    }
  }

  // routes
  const routes: RouteSpec[] = [];
  const used = new Set<string>();
  cfg.routes.forEach((r, index) => {
    const path = joinPath('routes', index);
    r.to.forEach((sink: unknown, j) => {
      if (typeof sink !== 'string') return; // the schema said so
      used.add(sink);
      if (sinkIds && !sinkIds.includes(sink)) {
        const names = sinkIds;
        errs.push(
          new BackhaulError('BH_CONFIG_REF', `no sink named "${sink}"${suggest(sink, names)}; sinks: ${names.join(', ') || '(none)'}`, {
            path: joinPath(joinPath(path, 'to'), j),
          }),
        );
      }
    });
    const match = (r.match ?? { kind: 'reading' }) as Match;
    (Array.isArray(match.inputs) ? match.inputs : []).forEach((input: unknown, j) => {
      if (typeof input !== 'string') return;
      if (inputIds && !inputIds.includes(input)) {
        const names = inputIds;
        errs.push(
          new BackhaulError('BH_CONFIG_REF', `no input named "${input}"${suggest(input, names)}; inputs: ${names.join(', ') || '(none)'}`, {
            path: `${path}.match.inputs[${j}]`,
          }),
        );
      }
    });
    const stages: StageSpec[] = [];
    r.stages.forEach((inst: unknown, j) => {
      if (!isObject(inst) || typeof inst['type'] !== 'string' || inst['type'] === '') return; // the schema said so
      const sPath = joinPath(joinPath(path, 'stages'), j);
      const def = lookup('stage', reg.stages, String(inst['type']), joinPath(sPath, 'type'));
      if (def) {
        const o = options(inst, ['type']);
        errs.push(...validateOptions(def, o, sPath, isUnresolved));
        stages.push({ def, options: o, path: sPath });
      }
    });
    // `to` holds only strings once the schema passed, and nothing is returned otherwise.
    routes.push({ name: typeof r.name === 'string' ? r.name : `route-${index}`, index, match, stages, to: r.to as string[] });
  });
  const names = new Set<string>();
  for (const r of routes) {
    if (names.has(r.name)) errs.push(new BackhaulError('BH_CONFIG_SCHEMA', `route name "${r.name}" is used twice`, { path: `routes[${r.index}].name` }));
    names.add(r.name);
  }
  const hist = isObject(cfg.api) ? cfg.api.historian : undefined;
  const keepsHistory = (sink: Record<string, unknown> | undefined): boolean => {
    const type = sink?.['type'];
    return typeof type === 'string' && reg.sinks.get(type)?.openHistory !== undefined;
  };
  if (typeof hist === 'string' && !keepsHistory(cfg.sinks[hist])) {
    const names = Object.entries(cfg.sinks)
      .filter(([, v]) => keepsHistory(v))
      .map(([k]) => k);
    errs.push(new BackhaulError('BH_CONFIG_REF', `no sink named "${hist}" keeps history; sinks that do: ${names.join(', ') || '(none)'}`, { path: 'api.historian' }));
  }
  // A topic proves a device only where brokerSync makes it so.
  for (const [id, input] of Object.entries(cfg.inputs)) {
    if (isObject(input) && input['trustTopics'] === true && !isObject(cfg.brokerSync)) {
      errs.push(new BackhaulError('BH_CONFIG_REF', 'trustTopics needs brokerSync: only a Mosquitto kept in step with the registry lets a device alone publish under its base topic', { path: `inputs.${id}.trustTopics` }));
    }
  }
  for (const id of Object.keys(cfg.sinks)) if (!used.has(id)) warnings.push(`${joinPath('sinks', id)}: no route sends to this sink`);
  if (Object.keys(cfg.inputs).length === 0) warnings.push('inputs: there are no inputs, so nothing will arrive');

  // Codec files are looked for now, so `backhaul check` names a missing one before a start would fail on it.
  const codecs = Object.fromEntries(Object.entries(isObject(cfg.codecs) ? cfg.codecs : {}).map(([name, file]) => [name, resolve(where.dir, file)]));
  for (const [name, file] of Object.entries(codecs)) {
    if (!existsSync(file)) errs.push(new BackhaulError('BH_CODEC_LOAD', `no codec file ${file}`, { path: `codecs.${name}` }));
  }
  // The API's certificate files: resolved against the config's folder and read now, like codec files.
  let apiTls: TlsServerOptions | undefined;
  if (isObject(cfg.api) && isObject(cfg.api.tls) && !topBad('api.tls')) {
    const t = cfg.api.tls;
    const abs = (f: string) => (isInlinePem(f) ? f : resolve(where.dir, f));
    apiTls = { ...t, cert: abs(t.cert), key: abs(t.key), ...(t.ca !== undefined ? { ca: abs(t.ca) } : {}) };
    errs.push(...tlsProblems(apiTls, (f) => f, 'api.tls', isUnresolved));
  }
  if (errs.length > 0) throw new ConfigErrors(errs);
  return {
    source: where.source,
    dir: where.dir,
    dataDir: resolve(where.dir, cfg.data ?? './data'),
    logLevel: cfg.log?.level,
    devices: {
      unknown: cfg.devices?.unknown ?? 'register',
      refreshMs: cfg.devices?.refreshMs ?? 10_000,
      topics: cfg.devices?.topics ?? {},
      commandTimeoutMs: cfg.devices?.commandTimeoutMs ?? 60_000,
      declared,
      gateways,
      unknownEvents: { burst: cfg.devices?.unknownEvents?.burst ?? 20, perMinute: cfg.devices?.unknownEvents?.perMinute ?? 10 },
      learn: learnOf(cfg.devices?.learn),
    },
    alarms: cfg.alarms?.remindEveryMs !== undefined ? { remindEveryMs: cfg.alarms.remindEveryMs } : {},
    codecs,
    api:
      cfg.api === undefined
        ? undefined
        : {
            host: cfg.api.host ?? '0.0.0.0',
            port: cfg.api.port ?? 8080,
            bootstrap: cfg.api.bootstrap ?? true,
            mosquittoGoAuth: cfg.api.mosquittoGoAuth === true,
            ...(cfg.api.historian !== undefined ? { historian: cfg.api.historian } : {}),
            ...(cfg.api.trustProxy !== undefined ? { trustProxy: cfg.api.trustProxy } : {}),
            ...(apiTls !== undefined ? { tls: apiTls } : {}),
          },
    // Defaults filled by the top-level schema; the password resolved with the other secrets.
    brokerSync: cfg.brokerSync,
    store: cfg.store,
    inputs,
    sinks,
    routes,
    secretValues: [...secrets.values],
    redacted: raw,
    warnings,
  };
}
