// The client side of TLS, shared by every driver that connects out (mqtt input and sink, http, emoncms, webhook,
// ntfy, nats): the `tls` options fragment, the connection options built from it, and what a failed handshake means.
// The PEM files are read each time a connection is made (not once at start), so a renewed certificate or CA file
// takes effect at the next reconnect without a restart. This is core's one file that reads them.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Type, type Static } from '@sinclair/typebox';
import { BackhaulError, errorText, type ErrorCode } from './errors.js';

export const TlsClientSchema = Type.Object(
  {
    ca: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'PEM file of the CA (or CAs) that signed the server\'s certificate, for a private CA. Without it: the system\'s public CAs.',
      }),
    ),
    cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of Backhaul\'s client certificate, for servers that ask for one (mutual TLS); needs `key`.' })),
    key: Type.Optional(
      Type.String({
        minLength: 1,
        secret: true,
        description: 'PEM file of the client certificate\'s private key, or `{"secret": NAME}` whose value is the PEM text itself.',
      }),
    ),
    servername: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Host name sent as SNI and that the server\'s certificate must name. Default: the url\'s host (needed when the url holds an IP address the certificate does not list).',
      }),
    ),
    insecure: Type.Boolean({
      default: false,
      description: 'DANGER: accept any server certificate (no verification at all). For a lab only; a warning is logged at every start.',
    }),
    minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { default: 'TLSv1.2', description: 'Oldest TLS version accepted.' }),
  },
  {
    additionalProperties: false,
    description:
      'TLS for `mqtts://`, `wss://` and `https://` urls, and for NATS servers: `ca`, `cert`, `key`, `servername`, `insecure`, `minVersion` (docs/tls.md, "Connecting over TLS"). ' +
      'The server\'s certificate is always verified unless `insecure`; the files are read again at every connection.',
  },
);

export type TlsClientConfig = Static<typeof TlsClientSchema>;

/** What node:tls (and https, ws) take; a subset of `tls.ConnectionOptions`. */
export interface TlsConnectOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer | string;
  servername?: string;
  rejectUnauthorized: boolean;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/**
 * Problems a driver's `check` reports: cert without key and the reverse, and `tls` with a url that has no TLS (which
 * would be ignored, or for mqtt.js quietly turned into mqtts:// when a cert is given). `url` undefined: a protocol
 * that turns any connection into TLS itself (NATS, whose server offers TLS in its INFO), so no scheme to check.
 */
export function tlsConfigProblems(o: TlsClientConfig | undefined, url: string | undefined, path = 'tls'): { path: string; message: string }[] {
  if (!o) return [];
  const scheme = url === undefined ? undefined : /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined && !['mqtts', 'wss', 'https'].includes(scheme)) {
    return [{ path, message: `the url is ${scheme}://, which has no TLS: use ${scheme === 'http' ? 'https' : scheme === 'ws' ? 'wss' : 'mqtts'}:// or leave tls out` }];
  }
  if (o.cert !== undefined && o.key === undefined) return [{ path: `${path}.key`, message: 'a client certificate (cert) needs its key' }];
  if (o.key !== undefined && o.cert === undefined) return [{ path: `${path}.cert`, message: 'a key needs its client certificate (cert)' }];
  return [];
}

/** A `key` whose value is the PEM text itself (from a secret) rather than a file name. */
function isPemText(v: string): boolean {
  return v.trimStart().startsWith('-----BEGIN');
}

type Reader = (file: string) => Buffer;

function build(o: TlsClientConfig, resolvePath: (p: string) => string, at: string, read: Reader): TlsConnectOptions {
  const pem = (field: 'ca' | 'cert' | 'key', value: string): Buffer => {
    let data: Buffer;
    try {
      data = read(resolvePath(value));
    } catch (e) {
      // The path is not printed for `key`: it may be a secret that merely did not look like PEM.
      throw new BackhaulError('BH_TLS_FILE', `cannot read the ${field} file${field === 'key' ? '' : ` ${value}`}: ${errorText(e)}`, { path: `${at}.${field}`, cause: e });
    }
    if (!data.toString('latin1').includes('-----BEGIN')) {
      throw new BackhaulError('BH_TLS_FILE', `the ${field} file${field === 'key' ? '' : ` ${value}`} holds no PEM block (-----BEGIN ...)`, { path: `${at}.${field}` });
    }
    return data;
  };
  const out: TlsConnectOptions = { rejectUnauthorized: !o.insecure, minVersion: o.minVersion };
  if (o.ca !== undefined) out.ca = pem('ca', o.ca);
  if (o.cert !== undefined) out.cert = pem('cert', o.cert);
  if (o.key !== undefined) out.key = isPemText(o.key) ? o.key : pem('key', o.key);
  if (o.servername !== undefined) out.servername = o.servername;
  return out;
}

/**
 * The connection options for one (re)connection, the files read now. Throws BH_TLS_FILE naming `<at>.<field>` when
 * one cannot be read or is not PEM. Synchronous for mqtt.js, whose stream builder runs synchronously on reconnect.
 */
export function tlsConnectOptions(o: TlsClientConfig, resolvePath: (p: string) => string, at: string): TlsConnectOptions {
  return build(o, resolvePath, at, (f) => readFileSync(f));
}

/** As `tlsConnectOptions`, reading the files without blocking the event loop (per HTTP request). */
export async function tlsConnectOptionsAsync(o: TlsClientConfig, resolvePath: (p: string) => string, at: string): Promise<TlsConnectOptions> {
  const files = new Map<string, Buffer | Error>();
  for (const f of [o.ca, o.cert, o.key]) {
    if (f === undefined || isPemText(f)) continue;
    const p = resolvePath(f);
    files.set(p, await readFile(p).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e)))));
  }
  return build(o, resolvePath, at, (f) => {
    const got = files.get(f);
    if (got === undefined) return readFileSync(f);
    if (got instanceof Error) throw got;
    return got;
  });
}

// ---------------------------------------------------------------- failures

export type TlsReason =
  | 'expired'
  | 'not yet valid'
  | 'wrong host'
  | 'unknown CA'
  | 'revoked'
  | 'bad certificate'
  | 'client certificate refused'
  | 'handshake failed';

/** OpenSSL's verification results (as Node's error codes) and what they mean to a person. */
const VERIFY_REASONS: Readonly<Record<string, TlsReason>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not yet valid',
  ERR_TLS_CERT_ALTNAME_INVALID: 'wrong host',
  HOSTNAME_MISMATCH: 'wrong host',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown CA',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown CA',
  CERT_UNTRUSTED: 'unknown CA',
  CERT_REVOKED: 'revoked',
  CERT_SIGNATURE_FAILURE: 'bad certificate',
  CERT_CHAIN_TOO_LONG: 'bad certificate',
  INVALID_CA: 'bad certificate',
  INVALID_PURPOSE: 'bad certificate',
  ERR_TLS_CERT_SIGNATURE_ALGORITHM_UNSUPPORTED: 'bad certificate',
};

/** Alerts a server sends when it does not take the client certificate (or got none). */
const CLIENT_CERT_ALERT = /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/;

export interface TlsFailure {
  readonly code: Extract<ErrorCode, 'BH_TLS_VERIFY' | 'BH_TLS_HANDSHAKE'>;
  readonly reason: TlsReason;
  /** Node's own words (the error's message). */
  readonly detail: string;
}

/**
 * What a connection error means if it is a TLS failure (verification or handshake), else undefined. Follows
 * `cause` (fetch and some clients wrap the socket's error).
 */
export function tlsFailure(err: unknown): TlsFailure | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    const detail = (e as { message?: unknown }).message;
    if (typeof code !== 'string') continue;
    const text = typeof detail === 'string' ? detail : code;
    const reason = VERIFY_REASONS[code];
    if (reason) return { code: 'BH_TLS_VERIFY', reason, detail: text };
    if (CLIENT_CERT_ALERT.test(code)) return { code: 'BH_TLS_HANDSHAKE', reason: 'client certificate refused', detail: text };
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return { code: 'BH_TLS_HANDSHAKE', reason: 'handshake failed', detail: text };
  }
  return undefined;
}

/** One line for logs, status and errors; `who` names the driver (`sink cloud`), `where` the far end. */
export function tlsFailureText(f: TlsFailure, who: string, where: string): string {
  return f.code === 'BH_TLS_VERIFY'
    ? `${who}: the certificate of ${where} is not accepted: ${f.reason} (${f.detail})`
    : `${who}: the TLS handshake with ${where} failed: ${f.reason} (${f.detail})`;
}

/**
 * Put fresh TLS options into an mqtt.js client's options object (the one its stream builder reads at every
 * (re)connect): at the top level for mqtts://, and in `wsOptions` for wss://, which mqtt.js fills from the top level
 * only once.
 */
export function setMqttTls(target: { wsOptions?: unknown } & object, t: TlsConnectOptions): void {
  const fields: (keyof TlsConnectOptions)[] = ['ca', 'cert', 'key', 'servername', 'rejectUnauthorized', 'minVersion'];
  const top = target as Record<string, unknown>;
  const ws = (typeof target.wsOptions === 'object' && target.wsOptions !== null ? target.wsOptions : {}) as Record<string, unknown>;
  for (const f of fields) {
    if (t[f] === undefined) {
      delete top[f];
      delete ws[f];
    } else {
      top[f] = t[f];
      ws[f] = t[f];
    }
  }
  top['wsOptions'] = ws;
}
