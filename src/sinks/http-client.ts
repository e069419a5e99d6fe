// One HTTP request for the http, emoncms, webhook and ntfy sinks, on node:http and node:https (not the global fetch,
// which takes no CA, client certificate or servername without undici's own Agent): a timeout, an abort when the sink
// closes, no redirects followed (a POST turned into a GET by a 302 would lose data silently), a capped response body,
// and transport failures turned into retryable SinkErrors whose messages name only scheme, host and port. With `tls`,
// the PEM files are read for every request, so a renewed file takes effect at once: the connection pool is keyed by
// the TLS options, so changed files make a new connection, unchanged ones reuse the kept-alive one.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SinkError, type DriverContext } from '../core/driver.js';
import { errorText } from '../core/errors.js';
import { tlsConnectOptionsAsync, tlsFailure, tlsFailureText, type TlsClientConfig, type TlsConnectOptions } from '../core/tls-client.js';
import { safeUrl } from '../core/url.js';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  /** The response body as text, cut at `maxBodyBytes`. */
  readonly body: string;
}

export interface HttpRequest {
  readonly url: URL;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly timeoutMs: number;
  /** Aborts the request (the sink is closing). */
  readonly signal?: AbortSignal;
  readonly maxBodyBytes?: number;
  /** https: the connection's TLS options (CA, client certificate, servername). */
  readonly tls?: TlsConnectOptions;
  /** Keep-alive pools; without them each request has a connection of its own. */
  readonly agents?: { readonly http: HttpAgent; readonly https: HttpsAgent };
}

/** TLS for an HTTP target: the sink's `tls` options and where failures are counted. */
export interface HttpTls {
  readonly options: TlsClientConfig | undefined;
  readonly ctx: Pick<DriverContext, 'id' | 'logger' | 'metrics' | 'resolvePath'>;
}

/**
 * Move `user:password@` out of a URL (fetch refuses URLs with credentials) into a Basic Authorization header,
 * unless the headers already hold an Authorization.
 */
export function splitCredentials(raw: string, headers: Record<string, string>): { url: URL; headers: Record<string, string> } {
  const url = new URL(raw);
  const out = { ...headers };
  if (url.username || url.password) {
    const has = Object.keys(out).some((k) => k.toLowerCase() === 'authorization');
    if (!has) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      out['Authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
    url.username = '';
    url.password = '';
  }
  return { url, headers: out };
}

/**
 * The far end of an HTTP sink between open() and close(): its URL with credentials moved into headers, the form of it
 * messages may show, and the abort that close() uses to end requests in flight.
 */
export class HttpTarget {
  private closing = new AbortController();
  private current: { url: URL; headers: Record<string, string> } | undefined;
  private agents: { http: HttpAgent; https: HttpsAgent } | undefined;
  /** The URL as messages show it (scheme, host, port). */
  where: string;

  constructor(
    private readonly raw: string,
    private readonly sink: string,
    private readonly tls?: HttpTls,
  ) {
    this.where = safeUrl(raw);
  }

  /** `bare`: drop the query and fragment (the URL is a base that requests add paths to). */
  async open(headers: Record<string, string>, bare = false): Promise<void> {
    this.closing = new AbortController();
    const tls = this.tls?.options;
    if (tls) {
      if (tls.insecure) this.tls?.ctx.logger.warn({ url: this.where }, 'tls.insecure: the server\'s certificate is NOT verified; anyone on the path can read and change this traffic');
      await this.tlsOptions(false); // a missing or broken file is a config error at start
    }
    try {
      const t = splitCredentials(this.raw, headers);
      if (bare) {
        t.url.search = '';
        t.url.hash = '';
      }
      this.current = t;
      this.where = safeUrl(t.url);
    } catch {
      throw new SinkError('the url option is not a valid URL', false);
    }
    this.agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
  }

  /** The TLS options read now; a file that cannot be read is a SinkError naming the option. */
  private async tlsOptions(retryable: boolean): Promise<TlsConnectOptions | undefined> {
    const tls = this.tls;
    if (!tls?.options) return undefined;
    const at = `sinks.${tls.ctx.id}.tls`;
    try {
      return await tlsConnectOptionsAsync(tls.options, (p) => tls.ctx.resolvePath(p), at);
    } catch (e) {
      throw new SinkError(errorText(e), retryable, { cause: e, code: 'BH_TLS_FILE' });
    }
  }

  /** The open target's URL; throws a fatal SinkError when the sink is not open. */
  get url(): URL {
    return this.assertOpen().url;
  }

  /** One request with the target's headers (and `extra` over them), ended by close(). */
  async send(req: Omit<HttpRequest, 'headers' | 'signal' | 'tls' | 'agents'> & { readonly headers?: Record<string, string> }): Promise<HttpAnswer> {
    const t = this.assertOpen();
    // Read for every request (a renewed file may have replaced them), only for https.
    const tls = req.url.protocol === 'https:' ? await this.tlsOptions(true) : undefined;
    const agents = this.agents;
    try {
      return await httpSend({
        ...req,
        headers: { ...t.headers, ...req.headers },
        signal: this.closing.signal,
        ...(tls ? { tls } : {}),
        ...(agents ? { agents } : {}),
      });
    } catch (e) {
      const failure = this.tls ? tlsFailure(e) : undefined;
      if (!failure || !this.tls) throw e;
      // Retryable like any outage: a renewed certificate on either side mends it without a restart.
      this.tls.ctx.metrics.tlsFailures.inc({ client: `sinks.${this.tls.ctx.id}`, reason: failure.reason });
      throw new SinkError(tlsFailureText(failure, `sink ${this.tls.ctx.id}`, safeUrl(req.url)), true, { cause: e, code: failure.code });
    }
  }

  close(): Promise<void> {
    this.closing.abort();
    this.current = undefined;
    this.agents?.http.destroy();
    this.agents?.https.destroy();
    this.agents = undefined;
    return Promise.resolve();
  }

  /** Throws a fatal SinkError when the sink is not open. */
  assertOpen(): { url: URL; headers: Record<string, string> } {
    if (!this.current) throw new SinkError(`the ${this.sink} sink is not open`, false);
    return this.current;
  }
}

/** Reads a response body up to `max` bytes, then stops reading (the rest is not wanted). */
function readCapped(res: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).subarray(0, max).toString('utf8'));
    };
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size >= max) {
        finish();
        res.destroy();
      }
    });
    res.on('end', () => finish());
    res.on('error', (e) => finish(e));
    res.on('aborted', () => finish(new Error('the response was cut off')));
    res.on('close', () => finish(res.complete ? undefined : new Error('the connection closed before the response ended')));
  });
}

function answerHeaders(res: IncomingMessage): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(res.headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
  }
  return h;
}

export async function httpSend(req: HttpRequest): Promise<HttpAnswer> {
  const where = safeUrl(req.url);
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([timeout, req.signal]) : timeout;
  const failed = (e: unknown): SinkError => {
    if (timeout.aborted) return new SinkError(`no answer from ${where} within ${req.timeoutMs} ms`, true, { cause: e });
    if (req.signal?.aborted) return new SinkError(`request to ${where} aborted: the sink is closing`, true, { cause: e });
    return new SinkError(`cannot reach ${where}: ${errorText(e)}`, true, { cause: e });
  };
  const secure = req.url.protocol === 'https:';
  const body = Buffer.from(req.body, 'utf8');
  const headers: Record<string, string> = { ...req.headers };
  const has = (name: string) => Object.keys(headers).some((k) => k.toLowerCase() === name);
  // What fetch sent for a string body, so far ends see the same request as before.
  if (!has('content-type') && body.byteLength > 0) headers['Content-Type'] = 'text/plain;charset=UTF-8';
  if (body.byteLength > 0 || (req.method !== 'GET' && req.method !== 'HEAD')) headers['Content-Length'] = String(body.byteLength);
  const agent = req.agents ? (secure ? req.agents.https : req.agents.http) : false;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    if (signal.aborted) {
      reject(failed(signal.reason));
      return;
    }
    const options = { method: req.method, headers, agent, signal, ...(secure ? req.tls : undefined) };
    const r = secure ? httpsRequest(req.url, options, resolve) : httpRequest(req.url, options, resolve);
    r.on('error', (e) => reject(failed(e)));
    r.end(body.byteLength > 0 ? body : undefined);
  });
  try {
    const text = await readCapped(res, req.maxBodyBytes ?? 64 * 1024);
    return { status: res.statusCode ?? 0, headers: answerHeaders(res), body: text };
  } catch (e) {
    throw failed(e);
  }
}

/** The start of a response body for an error message: one line, at most `max` characters. */
export function bodySnippet(body: string, max = 200): string {
  const one = body.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

/** What a status means for a whole batch: retry later (timeouts, rate limits, server errors) or stop. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** A redirect is a config error: the URL should name the final address. */
export function redirectError(where: string, status: number, location: string | null): SinkError {
  let to = '';
  try {
    if (location) to = ` to ${safeUrl(new URL(location, `${where}/`))}`;
  } catch {
    to = '';
  }
  return new SinkError(`${where} answered ${status} (a redirect${to}); set the sink's url to the final address`, false);
}
