// The catalog of coded errors. Every error Backhaul reports to a person or counts in a metric carries one of these
// codes; docs/errors.md documents each (a test keeps the two in step). Messages name the JSON path or field at fault.
// Each code carries the HTTP status an answer with it has (Fastify's `createError(code, message, status)`): the API,
// the bootstrap routes and the `http` input answer with it (a site names another only where the situation needs it:
// 413 for a body over the limit is still BH_HTTP_BODY).

export const ERROR_CATALOG = {
  // config and secrets
  BH_CONFIG_READ: [500, 'The config file could not be read.'],
  BH_CONFIG_SYNTAX: [500, 'The config file is not valid JSON (comments and trailing commas are allowed).'],
  BH_CONFIG_SCHEMA: [500, 'A config value has the wrong type, is out of range, or a required key is missing.'],
  BH_CONFIG_UNKNOWN_KEY: [500, 'The config has a key that nothing reads (often a typo).'],
  BH_CONFIG_UNKNOWN_TYPE: [500, 'An input, decoder, stage or sink names a driver type that does not exist.'],
  BH_CONFIG_REF: [500, 'A reference in the config names something that does not exist (a route naming an unknown sink).'],
  BH_SECRET_MISSING: [500, 'A `{"secret": NAME}` value names a secret found neither in the credentials file nor the environment.'],
  BH_SECRET_FILE: [500, 'The credentials file could not be read or is not a JSON object of strings.'],
  BH_SECRET_WEAK: [500, 'A secret is shorter than 4 characters: too short to keep out of logs, and no real credential.'],
  BH_SECRET_FILE_MODE: [500, 'The credentials file is readable by group or others; Backhaul refuses to start.'],
  // start-up and drivers
  BH_PORT_IN_USE: [500, 'A listener could not bind its port because something else holds it.'],
  BH_INPUT_FAILED: [503, 'An input could not start or failed while running.'],
  BH_SINK_OPEN: [502, 'A sink could not open its connection or file.'],
  BH_DATA_IN_USE: [500, 'Another Backhaul instance is running with the same data folder; two would deliver every outbox twice.'],
  BH_NOT_RUNNING: [503, '`backhaul status` or `backhaul devices command` found no running instance for that config\'s data folder.'],
  BH_USAGE: [400, 'The command line is wrong (unknown command or option), or `BACKHAUL_LOG_LEVEL` is no log level.'],
  // decoding (counted per input and code in backhaul_decode_errors_total)
  BH_DECODE_SYNTAX: [400, 'A frame is not valid JSON or CBOR.'],
  BH_DECODE_SHAPE: [400, 'A frame parsed but does not have the expected shape (the path names the field at fault).'],
  BH_DECODE_NO_DEVICE: [400, 'No device id could be found in a frame.'],
  BH_DECODE_TIME: [400, 'A frame carries a time that cannot be understood.'],
  BH_DECODE_NO_VALUES: [400, 'A frame holds no values.'],
  BH_DECODE_TOO_MANY: [400, 'A frame holds more records (SenML) or readings (a JSON array) than its decoder takes in one frame (`maxRecords`, `maxReadings`; 10,000 by default), or a JSON object or CBOR map from outside has more than 10,000 members.'],
  BH_DECODE_DEPTH: [400, 'A JSON or CBOR document (a frame, a device status, an API body) nests arrays and objects deeper than the limit (64 levels); it is refused before it is parsed.'],
  BH_CODEC_LOAD: [400, 'A payload codec does not load in its sandbox: a syntax error, it throws while loading, or it defines no `decodeUplink` function.'],
  BH_CODEC_FAILED: [400, 'A payload codec threw on this uplink or downlink (the message says what); only that message is lost.'],
  BH_CODEC_TIMEOUT: [400, 'A payload codec ran longer than its deadline on one message (an endless loop?); it was stopped and its sandbox made anew.'],
  BH_CODEC_MEMORY: [400, 'A payload codec ran out of its memory or stack limit on one message; its sandbox was made anew.'],
  BH_CODEC_OUTPUT: [400, 'A payload codec returned something other than the device-repository shape (`{data}` for uplinks, `{bytes, fPort?}` for downlinks), or no JSON.'],
  BH_CODEC_ERRORS: [400, 'A payload codec returned `errors` for this message (it says it cannot decode or encode it).'],
  BH_CODEC_UNSUPPORTED: [400, 'A payload codec defines no `encodeDownlink`, so orders to its devices need raw bytes.'],
  BH_LORAWAN_PROTOBUF: [400, 'A LoRaWAN network server sent protobuf, which Backhaul does not read: switch its integration to JSON (ChirpStack: `json=true` under `[integration.mqtt]`).'],
  BH_DECODE_CBOR_TAG: [400, 'A CBOR frame uses a tag the SenML decoder does not read (shared references 28 and 29 among them); only 2 and 3 (bignums of at most 16 bytes), 4 (decimal fraction) and 55799 (self-described CBOR) are read.'],
  BH_OPENTRV_LINE: [400, 'An OpenTRV binary stats line (`@ID;T..;L..`) is malformed.'],
  BH_SENML_VERSION: [400, 'A SenML pack uses a version above 10 or mixes versions.'],
  BH_SENML_VALUE: [400, 'A SenML record has no value (and no sum) or more than one value field.'],
  BH_SENML_NAME: [400, 'A SenML resolved name is empty or uses characters outside A-Z a-z 0-9 - : . / _.'],
  BH_SENML_MUST_UNDERSTAND: [400, 'A SenML record has a label ending in `_`, which a receiver must understand and does not.'],
  // ingest over HTTP
  BH_HTTP_BODY: [400, 'An HTTP ingest request has a body that cannot be decoded.'],
  BH_HTTP_MEDIA_TYPE: [415, 'An HTTP ingest request has a Content-Type the input does not take.'],
  // the embedded MQTT broker (src/inputs/broker): each refusal is counted in backhaul_broker_refused_total{input, reason}
  BH_MQTT_PACKET_TOO_LARGE: [413, 'An MQTT client sent a packet whose fixed header claims more bytes than allowed (`maxConnectBytes` until its login is accepted, `maxPacketBytes` after), or a remaining length longer than 4 bytes; the connection is closed before the packet is read.'],
  BH_MQTT_CONNECTION_LIMIT: [503, 'A new MQTT connection was closed at once: its address already has `maxConnectionsPerAddress` connections open, or the broker has `maxConnections`.'],
  BH_MQTT_CONNECT_TIMEOUT: [408, 'An MQTT connection did not complete its login (CONNECT answered by CONNACK 0) within `connectTimeoutMs`; it was closed.'],
  BH_MQTT_CLIENT_ID: [409, 'An MQTT CONNECT was refused with CONNACK 2 (identifier rejected): its client id belongs to another login (a connection or a session kept for it), or it is empty with clean session 0 (MQTT-3.1.3-8).'],
  BH_MQTT_LOGIN_RATE: [429, 'An MQTT login was refused with CONNACK 3 (server unavailable): its client address tried too many logins, or failed too many in a row and is backed off (`loginLimit`).'],
  BH_MQTT_INFLIGHT: [429, 'An MQTT client has 1000 QoS 2 publishes awaiting PUBREL in one session; its connection is closed.'],
  // an external Mosquitto kept in step with the registry (brokerSync, src/runtime/dynsec.ts)
  BH_BROKER_SYNC: [502, 'Backhaul could not bring the external Mosquitto\'s dynamic-security plugin in step with the registry (unreachable, login refused, no answer, or a command answered with an error); the next sync tries again, and a password pushed this way must be reset again.'],
  // delivery
  BH_OUTBOX_OPEN: [500, 'A sink\'s durable outbox file could not be opened (permissions, disk full, not a SQLite file).'],
  BH_SINK_WRITE: [502, 'A sink failed to deliver a batch; it will be retried.'],
  BH_SINK_REJECTED: [422, 'A sink refused an item for good (for example HTTP 4xx); the item is dropped and counted.'],
  BH_TLS_VERIFY: [502, 'A TLS connection Backhaul opened (mqtt sink or input, http, emoncms, webhook, ntfy) refused the server\'s certificate: the message names the driver and the reason (`expired`, `not yet valid`, `wrong host`, `unknown CA`, `revoked`, `bad certificate`); counted in backhaul_tls_failures_total and retried like any outage.'],
  BH_TLS_HANDSHAKE: [502, 'A TLS handshake Backhaul started failed for another reason than the server\'s certificate: the server refused the client certificate (or wants one), or no TLS version or cipher is common; counted and retried.'],
  BH_TLS_FILE: [500, 'A `tls.ca`, `tls.cert` or `tls.key` file cannot be read or holds no PEM block, or (a listener serving TLS) the key does not belong to the certificate; the path names the option.'],
  BH_TLS_RELOAD: [500, 'Renewed certificate files were refused (unreadable, not PEM, key and certificate do not match); the previous certificate is still served.'],
  BH_SINK_FATAL: [502, 'A sink failed in a way retrying cannot mend (a refused login or API key, a bad URL): the sink stops, its queue is kept, until an operator fixes its config and restarts.'],
  BH_OUTBOX_CLOSED: [503, 'A message reached a sink\'s outbox after it closed (Backhaul is stopping); it is not acknowledged, so its sender sends it again.'],
  BH_OUTBOX_OVERFLOW: [503, 'A sink\'s outbox was full and its overflow policy dropped an item.'],
  // devices and the registry
  BH_DEVICE_ID: [400, 'A device id is not a valid id of its kind (MAC, DevEUI, UUID, OpenTRV node id, other), or its kind cannot be told.'],
  BH_DEVICE_TYPE: [400, 'A device names a device type that does not exist, or a new device has no type.'],
  BH_DEVICE_CONFIG: [400, 'A device\'s config does not match its type\'s schema (the path names the field at fault).'],
  BH_DEVICE_LOCATION: [400, 'A location field (site, building, room) is empty or too long, holds `/`, `+`, `#` or control characters, starts with `$`, or is a reserved name; it would widen an MQTT topic.'],
  BH_DEVICE_FIELD: [400, 'A device attribute has the wrong form (tag, threshold, description, enabled flag).'],
  BH_DEVICE_DESCRIPTION: [400, 'A device\'s self-description on `<base>/device` does not match its type\'s `describe` schema: the device is BLOCKED with this reason (counted in `backhaul_decode_errors_total`).'],
  BH_DEVICE_STATE: [409, 'The device is not in a state that allows this (unblocking a device that is not BLOCKED).'],
  BH_DEVICE_NOT_FOUND: [404, 'No device with that id is in the registry.'],
  BH_DEVICE_EXISTS: [409, 'A device with that id (or a login with that username) already exists.'],
  BH_DEVICE_READ_ONLY: [409, 'The device is declared in the config file; change it there, not through the CLI, API or a manifest.'],
  BH_DEVICE_FOREIGN: [403, 'A device logged in to the embedded broker sent a reading naming another device, and the config does not declare that login a gateway for it (`devices.gateways`); the reading is dropped, the frame\'s other readings pass.'],
  BH_DEVICE_CERTIFICATE: [400, 'A device certificate given to the registry is not one: not a PEM certificate, or a fingerprint that is not SHA-256 (64 hex digits, colons allowed).'],
  BH_DEVICE_CLAIMED: [409, 'A claim window was asked for a device whose password was handed out already; reset its credentials for bootstrap first (`reset-credentials --bootstrap`).'],
  BH_COMMAND_ORDER: [400, 'An order is not a word of letters, digits, `_ . -` (at most 64), or its parameters are too large or not `k=v`.'],
  BH_ALARM_NOT_FOUND: [404, 'No alarm has this id.'],
  BH_ALARM_STATE: [409, 'The alarm is cleared already: it can be neither acknowledged nor cleared again.'],
  BH_COMMAND_REFUSED: [409, 'An order cannot go to that device: it is disabled, BLOCKED, has no location and so no command topic, or has never connected (no broker login, or never heard from; `force` sends it anyway).'],
  BH_COMMAND_UNSUPPORTED: [409, 'The device\'s type takes no orders (`ordersVia: none`: a radio-only valve hears nothing back).'],
  BH_COMMAND_NO_BROKER: [503, 'Orders travel through the embedded broker, and the running config has no `broker` input.'],
  BH_COMMAND_FAILED: [503, 'An order was recorded but could not be published (the broker is stopping); it is marked failed.'],
  BH_MANIFEST_FORMAT: [400, 'A device manifest (CSV or JSON lines) cannot be read: unknown column, unclosed quote, a line that is not a JSON object.'],
  BH_MANIFEST_DUPLICATE: [409, 'A device manifest lists the same device twice; the later row is refused.'],
  BH_REGISTRY_OPEN: [500, 'The device registry could not be opened: its file or login key (`<data>/registry.key`) (permissions, not a SQLite file, written by a newer Backhaul, a damaged key file), or its PostgreSQL database (a bad URL, the server unreachable or refusing the login, a schema at a newer version, a migration that failed, a damaged `login_key` row).'],
  // device bootstrap over HTTP
  BH_API_REQUEST: [400, 'An API request is malformed: a query parameter, header or body field is missing or has the wrong form (the path names it, e.g. `querystring.mac`).'],
  BH_API_NOT_FOUND: [404, 'No API route answers that method and path.'],
  BH_API_INTERNAL: [500, 'An API request failed inside Backhaul (the log says why); retry later.'],
  BH_API_NO_HISTORIAN: [503, 'Readings, latest values and stored events come from a `sqlite` sink (the historian), and the config has none (or `api.historian` names none), or it is not open yet.'],
  BH_BOOTSTRAP_REFUSED: [403, 'A device asked for its credentials and none were handed out. One answer for every reason (unknown MAC, no open claim window, window expired, password already taken, wrong or missing claim code, device disabled, BLOCKED or declared in the config without a login), so a caller learns nothing; the audit log and the log say which.'],
  BH_BOOTSTRAP_UNPLACED: [409, 'A device asked for its credentials but has no topics yet (its location lacks a building or room); no password was issued, the next call after an operator places it gets one.'],
  BH_BOOTSTRAP_NO_BROKER: [503, 'A device asked for its credentials but no MQTT broker is available to devices; nothing was issued, retry later.'],
  BH_BOOTSTRAP_AUTH: [401, 'A device\'s config request lacks HTTP Basic credentials, or they are wrong, or the device is disabled, BLOCKED or has no password yet.'],
  // API tokens and sessions
  BH_API_UNAUTHENTICATED: [401, 'An API request has no token or session, or an unknown, malformed or revoked one (`Authorization: Bearer bh_…` or the dashboard session cookie).'],
  BH_API_FORBIDDEN: [403, 'The API token\'s role (viewer, operator, admin) is too low for that route.'],
  BH_API_RATE_LIMITED: [429, 'Too many attempts (session logins, failed token checks, bootstrap calls) from one client address; wait for the Retry-After seconds.'],
  BH_TOKEN_NAME: [400, 'An API token name is empty, longer than 64 characters, holds non-printable characters or spaces at either end, or is taken by a token that is not revoked.'],
  BH_TOKEN_ROLE: [400, 'An API token role is not one of viewer, operator, admin.'],
  BH_TOKEN_NOT_FOUND: [404, 'No API token with that id exists.'],
  BH_TOKEN_OPEN: [500, 'The API tokens could not be opened: the token file `<data>/tokens.sqlite` (permissions, not a SQLite file, written by a newer Backhaul), or the PostgreSQL store (unreachable, refused, a bad schema name, tokens written by a newer Backhaul).'],
  // `backhaul certs` (the site's PKI, docs/tls.md)
  BH_CERT_NO_CA: [404, 'There is no CA in the certificates folder yet (`ca.pem`, `ca-key.pem`): run `backhaul certs init` first.'],
  BH_CERT_CA_EXISTS: [409, 'The certificates folder has a CA already; `backhaul certs init` keeps it (every certificate it signed depends on it) unless given `--force`.'],
  BH_CERT_IP: [400, 'A `--ip` value is not an IPv4 or IPv6 address.'],
  BH_CERT_HOST: [400, 'A `--host` value is not a DNS host name (letters, digits and `-` in dot-separated labels), or a server certificate would name no host at all.'],
  BH_CERT_NAME: [400, 'A CA name is empty, longer than 64 characters or holds control characters, or a certificate file name (`--name`) is not a plain word of letters, digits, `.`, `_`, `-`.'],
  BH_CERT_DAYS: [400, 'A `--days` value is not a whole number from 1 to 36500.'],
  BH_CERT_READ: [500, 'A certificate or key file cannot be read, or does not hold a PEM certificate (or PKCS#8 ECDSA P-256 key); the path names the file.'],
  BH_CERT_KEY: [500, 'The CA key (`ca-key.pem`) does not belong to the CA certificate (`ca.pem`): one of them was replaced.'],
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** What a code means, for docs/errors.md and `backhaul docs`. */
export function errorDescription(code: ErrorCode): string {
  return ERROR_CATALOG[code][1];
}

/** The HTTP status an answer carrying `code` has. */
export function httpStatus(code: ErrorCode): number {
  return ERROR_CATALOG[code][0];
}

/** The JSON body of every error answer over HTTP: `{"error": {"code", "message", "path"?}}`. */
export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string; readonly path?: string };
}

export function errorBody(code: ErrorCode, message: string, path?: string): ErrorBody {
  return { error: { code, message, ...(path !== undefined ? { path } : {}) } };
}

/** An error's message for a log line or status, following `cause` one level (fetch hides ECONNREFUSED there). */
export function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause;
  if (cause instanceof Error && cause.message && cause.message !== e.message) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${e.message}: ${code && !cause.message.includes(code) ? `${code} ` : ''}${cause.message}`;
  }
  return e.message;
}

export interface BackhaulErrorOptions {
  /** JSON path or field at fault, e.g. `routes[1].to[0]` or `[2].vs`. */
  readonly path?: string;
  readonly cause?: unknown;
}

export class BackhaulError extends Error {
  readonly code: ErrorCode;
  readonly path: string | undefined;
  /** The message without the path prefix. */
  readonly detail: string;

  constructor(code: ErrorCode, detail: string, opts: BackhaulErrorOptions = {}) {
    super(opts.path ? `${opts.path}: ${detail}` : detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BackhaulError';
    this.code = code;
    this.path = opts.path;
    this.detail = detail;
  }

  /** `CODE path: detail`, the form printed to people. */
  override toString(): string {
    return `${this.code} ${this.message}`;
  }
}

/** Several config errors reported at once, so a person fixes them in one edit. */
export class ConfigErrors extends Error {
  readonly errors: readonly BackhaulError[];
  constructor(errors: readonly BackhaulError[]) {
    super(errors.map((e) => e.toString()).join('\n'));
    this.name = 'ConfigErrors';
    this.errors = errors;
  }
}

export function isBackhaulError(e: unknown): e is BackhaulError {
  return e instanceof BackhaulError;
}

/** Join a path and a key the way messages print them: `a.b`, `a[3]`, `a["odd key"]`. */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const plain = /^[A-Za-z_$][\w$-]*$/.test(key);
  const seg = plain ? key : JSON.stringify(key);
  if (!base) return plain ? key : `[${seg}]`;
  return plain ? `${base}.${key}` : `${base}[${seg}]`;
}

/** A short, printable excerpt of a bad value for messages. */
export function shown(s: string, max = 40): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > max ? `${clean.slice(0, max)}...` : clean);
}
