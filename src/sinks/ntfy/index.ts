// ntfy: one push notification per message (or one digest after quiet hours), POSTed to `{url}/{topic}` with the
// text as body and Title, Priority and Tags headers (https://docs.ntfy.sh/publish/). Shared notify behaviour: ../notify.ts.
import { TlsClientSchema, tlsConfigProblems } from '../../core/tls-client.js';
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import type { EventSeverity } from '../../core/types.js';
import { bodySnippet, HttpTarget, isRetryableStatus, redirectError } from '../http-client.js';
import { Notifier, notifyOptions, notifyProblems, type Note, type SendResult } from '../notify.js';

const Options = Type.Object(
  {
    url: Type.String({
      pattern: '^[Hh][Tt][Tt][Pp][Ss]?://',
      urlCredentials: true,
      default: 'https://ntfy.sh',
      description: 'The ntfy server, e.g. `https://ntfy.sh` or `http://ntfy.lan:8080`.',
    }),
    topic: Type.String({ pattern: '^[-_A-Za-z0-9]{1,64}$', description: 'The topic to publish to (letters, digits, `-` and `_`); anyone who knows a topic on a public server can read it.' }),
    token: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'Access token (sent as `Authorization: Bearer`); use `{"secret": NAME}`.' })),
    username: Type.Optional(Type.String({ minLength: 1, description: 'User for Basic authentication (with `password`).' })),
    password: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'Password for Basic authentication; use `{"secret": NAME}`.' })),
    priority: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 5, description: 'ntfy priority of every message (1 min … 5 max); default: from the severity (info 3, warning 4, critical 5).' }),
    ),
    tags: Type.Array(Type.String({ pattern: '^[^,]+$' }), { default: [], description: 'Tags (or emoji short codes) added to every message.' }),
    timeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'Give up on a request after this long (retried later).' }),
    tls: Type.Optional(TlsClientSchema),
    ...notifyOptions,
  },
  { additionalProperties: false },
);

const PRIORITY: Readonly<Record<EventSeverity, number>> = { info: 3, warning: 4, critical: 5 };

/** HTTP headers carry Latin-1 only: other text goes as an RFC 2047 encoded word, which ntfy (2.4 and later) decodes. */
export function headerText(s: string): string {
  const one = s.replace(/[\r\n]+/g, ' ');
  return /^[\x20-\x7e]*$/.test(one) ? one : `=?UTF-8?B?${Buffer.from(one, 'utf8').toString('base64')}?=`;
}

/** Statuses that refuse this one message for good (ntfy: a malformed request, a message too large). */
const REJECT_STATUSES = new Set([400, 413, 422]);
const FATAL_STATUSES = new Set([401, 403, 404, 410]);

/** A Retry-After header's wait in ms (seconds or an HTTP date), if it has a usable one. */
export function retryAfterMs(h: string | null, now: number): number | undefined {
  if (h === null || h.trim() === '') return undefined;
  const s = Number(h.trim());
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(h);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

export const ntfySink = defineSink({
  kind: 'sink',
  type: 'ntfy',
  description: 'Push notifications through an ntfy server: once per alarm, with quiet hours and a rate limit.',
  options: Options,
  batchSize: 500,
  check(o) {
    const problems = [...notifyProblems(o), ...tlsConfigProblems(o.tls, o.url)];
    if (o.password !== undefined && o.username === undefined) problems.push({ path: 'username', message: 'password is set without username' });
    if (o.username !== undefined && o.password === undefined) problems.push({ path: 'password', message: 'username is set without password' });
    if (o.token !== undefined && o.username !== undefined) problems.push({ path: 'token', message: 'give either token or username and password, not both' });
    return problems;
  },
  create(o, ctx) {
    const target = new HttpTarget(o.url, 'ntfy', { options: o.tls, ctx });
    const notifier = new Notifier(o, ctx);
    let topicUrl: URL | undefined;

    async function send(note: Note): Promise<SendResult> {
      const url = topicUrl ?? target.url;
      const tags = [...o.tags, ...note.tags];
      const answer = await target.send({
        url,
        method: 'POST',
        body: note.text,
        timeoutMs: o.timeoutMs,
        headers: { Title: headerText(note.title), Priority: String(o.priority ?? PRIORITY[note.severity]), ...(tags.length > 0 ? { Tags: headerText(tags.join(',')) } : {}) },
      });
      const where = target.where;
      const { status } = answer;
      const detail = answer.body ? `: ${bodySnippet(answer.body)}` : '';
      if (status >= 200 && status < 300) return { sent: true };
      if (status >= 300 && status < 400) throw redirectError(where, status, answer.headers.get('location'));
      if (status === 429) {
        const after = retryAfterMs(answer.headers.get('retry-after'), ctx.clock.now());
        throw new SinkError(`${where} answered 429 (too many requests)${detail}`, true, after === undefined ? {} : { retryAfterMs: after });
      }
      if (isRetryableStatus(status)) throw new SinkError(`${where} answered ${status}${detail}`, true);
      if (FATAL_STATUSES.has(status)) {
        const hint = status === 404 || status === 410 ? ' (check the url and topic)' : ' (check the token or username and password)';
        throw new SinkError(`${where} answered ${status}${hint}${detail}`, false);
      }
      if (REJECT_STATUSES.has(status)) return { rejected: new BackhaulError('BH_SINK_REJECTED', `${where} refused a notification with HTTP ${status}${detail}`) };
      throw new SinkError(`${where} answered ${status}${detail}`, false);
    }

    return {
      async open() {
        const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8' };
        if (o.token !== undefined) headers['Authorization'] = `Bearer ${o.token}`;
        else if (o.username !== undefined && o.password !== undefined) {
          headers['Authorization'] = `Basic ${Buffer.from(`${o.username}:${o.password}`).toString('base64')}`;
        }
        await target.open(headers, true);
        const u = new URL(target.url);
        u.pathname = `${u.pathname.replace(/\/+$/, '')}/${o.topic}`;
        topicUrl = u;
        ctx.logger.debug({ url: target.where, topic: o.topic }, 'ntfy sink ready');
      },
      write(batch) {
        target.assertOpen();
        return notifier.deliver(batch, send);
      },
      close() {
        topicUrl = undefined;
        return target.close();
      },
    };
  },
});
