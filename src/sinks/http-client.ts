// One HTTP request for the http and emoncms sinks, on Node's global fetch: a timeout, an abort when the sink
// closes, no redirects followed (a POST turned into a GET by a 302 would lose data silently), a capped response body,
// and transport failures turned into retryable SinkErrors whose messages name only scheme, host and port.
import { SinkError } from '../core/driver.js';
import { errorText } from '../core/errors.js';
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
  /** The URL as messages show it (scheme, host, port). */
  where: string;

  constructor(
    private readonly raw: string,
    private readonly sink: string,
  ) {
    this.where = safeUrl(raw);
  }

  /** `bare`: drop the query and fragment (the URL is a base that requests add paths to). */
  open(headers: Record<string, string>, bare = false): Promise<void> {
    this.closing = new AbortController();
    try {
      const t = splitCredentials(this.raw, headers);
      if (bare) {
        t.url.search = '';
        t.url.hash = '';
      }
      this.current = t;
      this.where = safeUrl(t.url);
    } catch {
      return Promise.reject(new SinkError('the url option is not a valid URL', false));
    }
    return Promise.resolve();
  }

  /** The open target's URL; throws a fatal SinkError when the sink is not open. */
  get url(): URL {
    return this.assertOpen().url;
  }

  /** One request with the target's headers (and `extra` over them), ended by close(). */
  send(req: Omit<HttpRequest, 'headers' | 'signal'> & { readonly headers?: Record<string, string> }): Promise<HttpAnswer> {
    const t = this.assertOpen();
    return httpSend({ ...req, headers: { ...t.headers, ...req.headers }, signal: this.closing.signal });
  }

  close(): Promise<void> {
    this.closing.abort();
    this.current = undefined;
    return Promise.resolve();
  }

  /** Throws a fatal SinkError when the sink is not open. */
  assertOpen(): { url: URL; headers: Record<string, string> } {
    if (!this.current) throw new SinkError(`the ${this.sink} sink is not open`, false);
    return this.current;
  }
}

async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= max) {
      await reader.cancel().catch(() => undefined);
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
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
  let res: Response;
  try {
    res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body, redirect: 'manual', signal });
  } catch (e) {
    throw failed(e);
  }
  try {
    const body = await readCapped(res, req.maxBodyBytes ?? 64 * 1024);
    return { status: res.status, headers: res.headers, body };
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
