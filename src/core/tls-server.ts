// Serving TLS: the `tls` section every listener shares (the broker's mqtts and wss listeners, the API, the `http`
// input), reading its certificate, key and CA files, and renewing them without a restart. The one core file that
// reads and watches certificate files (docs/architecture.md, Invariants).
//
// Renewal: the files are polled (their size, mtime and inode) every `watchMs`, and reloaded once a change has held
// still for one poll, so a cert written before its key is not tried with the old key; `reload()` does it at once
// (SIGHUP). A reload that fails (unreadable file, not PEM, a key that does not belong to the cert) keeps the
// context in use and reports a coded error. Servers get the new context by `setSecureContext`: new handshakes use
// it, open connections are left alone.
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { Type, type Static } from '@sinclair/typebox';
import type { Clock, ClockTimer } from './clock.js';
import { BackhaulError, errorText, joinPath } from './errors.js';
import type { Logger } from './logger.js';

export const TlsServerOptions = Type.Object(
  {
    cert: Type.String({ minLength: 1, description: 'PEM file with the server certificate (then any intermediates), relative to the config file.' }),
    key: Type.String({
      minLength: 1,
      // A path is no secret (and `check` must not warn about one written inline); the key itself comes as `{"secret": NAME}`.
      secret: false,
      description: 'PEM file with its private key; or `{"secret": NAME}` whose value is the PEM key itself (a value starting `-----BEGIN`).',
    }),
    ca: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'PEM file of CAs whose client certificates the broker\'s TLS listeners ask for, so devices may log in with a certificate (the broker\'s `certificateId`); asked, not required; none by default.',
      }),
    ),
    minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], {
      description: 'Oldest TLS version accepted; TLS 1.0 and 1.1 are always refused.',
      default: 'TLSv1.2',
    }),
    watchMs: Type.Integer({
      minimum: 0,
      description: 'How often the files are checked for a renewal (ms); a change is loaded once it has held still for one check. 0: only on SIGHUP.',
      default: 5000,
    }),
  },
  // `tlsServer` marks the section, so the config loader knows which options to read files for (Type.Optional copies).
  { additionalProperties: false, tlsServer: true, description: 'Serve TLS (docs/tls.md, "Serving TLS").' },
);
export type TlsServerOptions = Static<typeof TlsServerOptions>;

/** What a listener needs to serve with the files read once. */
export type ServerTls = Pick<SecureContextOptions, 'cert' | 'key' | 'ca' | 'minVersion'> & { readonly requestCert: boolean };

/** A server whose certificate can be replaced for new handshakes (tls.Server, https.Server). */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
}

const PEM_KEY = /^\s*-----BEGIN /;

/** A value that is the PEM itself (a key from the secrets store), not a file name. */
export function isInlinePem(key: string): boolean {
  return PEM_KEY.test(key);
}

/** The files a section names, as absolute paths, with the option each comes from (`cert`, `key`, `ca`). */
function filesOf(o: TlsServerOptions, resolvePath: (p: string) => string): Array<{ option: 'cert' | 'key' | 'ca'; file: string }> {
  const out: Array<{ option: 'cert' | 'key' | 'ca'; file: string }> = [{ option: 'cert', file: resolvePath(o.cert) }];
  if (!isInlinePem(o.key)) out.push({ option: 'key', file: resolvePath(o.key) });
  if (o.ca !== undefined) out.push({ option: 'ca', file: resolvePath(o.ca) });
  return out;
}

/**
 * Reads the files of a `tls` section at config path `path` (`inputs.devices.tls`) and checks that they make a
 * context (PEM, the key belongs to the certificate). Throws BH_TLS_FILE naming the option at fault.
 */
export function readServerTls(o: TlsServerOptions, resolvePath: (p: string) => string, path: string): ServerTls {
  const read = (option: 'cert' | 'key' | 'ca', file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new BackhaulError('BH_TLS_FILE', `cannot read the ${option} file ${file}: ${why}`, { path: joinPath(path, option), cause: e });
    }
  };
  const files = filesOf(o, resolvePath);
  const text = new Map(files.map((f) => [f.option, read(f.option, f.file)]));
  const cert = text.get('cert') ?? '';
  const key = text.get('key') ?? o.key;
  const ca = text.get('ca');
  const pem = (option: 'cert' | 'ca', what: string) => {
    const t = text.get(option) ?? '';
    if (!t.includes('-----BEGIN CERTIFICATE-----')) {
      const f = files.find((x) => x.option === option)?.file ?? '';
      throw new BackhaulError('BH_TLS_FILE', `${f} holds no PEM certificate (${what})`, { path: joinPath(path, option) });
    }
  };
  pem('cert', 'the server certificate');
  if (ca !== undefined) pem('ca', 'client CAs');
  const tls: ServerTls = { cert, key, minVersion: o.minVersion, requestCert: ca !== undefined, ...(ca !== undefined ? { ca } : {}) };
  try {
    createSecureContext(contextOptions(tls));
  } catch (e) {
    // OpenSSL's messages ("key values mismatch", "no start line") name the problem, never the key's bytes.
    const option = /key/i.test(errorText(e)) ? 'key' : 'cert';
    throw new BackhaulError('BH_TLS_FILE', `the certificate and key do not make a TLS context: ${errorText(e)}`, { path: joinPath(path, option), cause: e });
  }
  return tls;
}

/** The options `tls.createServer` / `setSecureContext` take for `tls`. */
export function contextOptions(tls: ServerTls): SecureContextOptions {
  return { cert: tls.cert, key: tls.key, minVersion: tls.minVersion, ...(tls.ca !== undefined ? { ca: tls.ca } : {}) };
}

/**
 * Options for `tls.createServer` / `https.createServer`: the context, and, where `clientCerts` (the broker's device
 * listeners), client certificates asked for when the section names client CAs: asked, not required, so devices with
 * passwords still log in. Elsewhere none is asked for (a browser would prompt its user for one).
 */
export function serverOptions(tls: ServerTls, clientCerts = false): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  return { ...contextOptions(tls), requestCert: clientCerts && tls.requestCert, rejectUnauthorized: false };
}

export interface CertificateWatchOptions {
  readonly options: TlsServerOptions;
  readonly resolvePath: (p: string) => string;
  /** Config path of the section, for errors: `inputs.devices.tls`, `api.tls`. */
  readonly path: string;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Called with each reload's failure (already logged), for the owner's counters. */
  readonly onError?: (err: BackhaulError) => void;
}

type Stamp = string;

/**
 * One `tls` section's certificate and key, kept current: `start()` reads them (throws BH_TLS_FILE), `attach` adds a
 * server to renew, `reload()` re-reads now (SIGHUP), and a poll re-reads after a change on disk. `stop()` ends the poll.
 */
export class ServerCertificates {
  private current: ServerTls | undefined;
  private readonly targets = new Set<SecureContextTarget>();
  private timer: ClockTimer | undefined;
  /** The files' stamp when last loaded (or tried), and at the last poll. */
  private loadedStamp: Stamp = '';
  private seenStamp: Stamp = '';
  private stopped = false;

  constructor(private readonly o: CertificateWatchOptions) {}

  /** The files as loaded; start() first. */
  get tls(): ServerTls {
    if (!this.current) throw new Error('ServerCertificates.start() was not called');
    return this.current;
  }

  start(): ServerTls {
    this.stopped = false;
    this.loadedStamp = this.stamp();
    this.seenStamp = this.loadedStamp;
    this.current = readServerTls(this.o.options, this.o.resolvePath, this.o.path);
    this.schedule();
    return this.current;
  }

  attach(server: SecureContextTarget): void {
    this.targets.add(server);
  }

  detach(server: SecureContextTarget): void {
    this.targets.delete(server);
  }

  /** Re-reads the files now; true when the new ones are in use, false (logged, old ones kept) when they were refused. */
  reload(): boolean {
    if (!this.current) return false;
    this.loadedStamp = this.stamp();
    this.seenStamp = this.loadedStamp;
    let next: ServerTls;
    try {
      next = readServerTls(this.o.options, this.o.resolvePath, this.o.path);
    } catch (e) {
      const cause = e instanceof BackhaulError ? `${e.code} ${e.detail}` : errorText(e);
      const err = new BackhaulError('BH_TLS_RELOAD', `renewed certificate refused, the previous one is still served: ${cause}`, {
        path: e instanceof BackhaulError && e.path !== undefined ? e.path : this.o.path,
        cause: e,
      });
      this.o.logger.error({ code: err.code, path: err.path, err: err.detail }, 'TLS certificate reload failed');
      this.o.onError?.(err);
      return false;
    }
    this.current = next;
    const ctx = contextOptions(next);
    for (const t of this.targets) t.setSecureContext(ctx);
    this.o.logger.info({ path: this.o.path }, 'TLS certificate reloaded');
    return true;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.targets.clear();
  }

  private schedule(): void {
    const ms = this.o.options.watchMs;
    if (ms === 0 || this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      this.poll();
      this.schedule();
    }, ms);
  }

  private poll(): void {
    const now = this.stamp();
    // Changed since loaded, and the same as at the previous poll: the writer is done.
    if (now !== this.loadedStamp && now === this.seenStamp) this.reload();
    this.seenStamp = now;
  }

  /** Size, mtime and inode of each file (a missing one stamps as such): cheap, and changed by any rewrite or rename. */
  private stamp(): Stamp {
    return filesOf(this.o.options, this.o.resolvePath)
      .map(({ file }) => {
        try {
          const s = statSync(file);
          return `${s.ino}:${s.size}:${s.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }
}
