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
