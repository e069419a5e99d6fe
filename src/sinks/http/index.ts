// http: a webhook. Each batch is one request whose body is a JSON array of messages (see ../format.ts).
import { TlsClientSchema, tlsConfigProblems } from '../../core/tls-client.js';
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError } from '../../core/driver.js';
import { CREDENTIAL_NAME } from '../../core/config/secrets.js';
import { BackhaulError } from '../../core/errors.js';
import { messageToJson } from '../format.js';
import { bodySnippet, HttpTarget, isRetryableStatus, redirectError } from '../http-client.js';

const Options = Type.Object(
  {
    url: Type.String({
      pattern: '^[Hh][Tt][Tt][Pp][Ss]?://',
      urlCredentials: true,
      description: 'Where to send each batch (http:// or https://).',
    }),
    method: Type.Union([Type.Literal('POST'), Type.Literal('PUT')], { default: 'POST', description: 'HTTP method of each request.' }),
    headers: Type.Record(Type.String({ minLength: 1 }), Type.String(), {
        default: {},
        // Shown redacted wherever the config is shown (src/core/config/redact.ts).
        secretKeys: CREDENTIAL_NAME,
        description: 'Extra request headers (an `Authorization` token, an API key); values may be `{"secret": NAME}`.',
      }),
    timeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'Give up on a request after this long (retried later).' }),
    tls: Type.Optional(TlsClientSchema),
  },
  { additionalProperties: false },
);

/** Statuses that refuse these items for good: sending them again would get the same answer. */
const REJECT_STATUSES = new Set([400, 413, 422]);

export const httpSink = defineSink({
  kind: 'sink',
  type: 'http',
  description: 'POST (or PUT) each batch as a JSON array of messages to a URL.',
  options: Options,
  check(o) {
    return tlsConfigProblems(o.tls, o.url);
  },
  create(o, ctx) {
    const { method, timeoutMs } = o;
    const target = new HttpTarget(o.url, 'http', { options: o.tls, ctx });

    return {
      open() {
        return target.open({ 'Content-Type': 'application/json', ...o.headers });
      },

      async write(batch) {
        if (batch.length === 0) return;
        const answer = await target.send({ url: target.url, method, body: JSON.stringify(batch.map(messageToJson)), timeoutMs });
        const where = target.where;
        const { status } = answer;
        if (status >= 200 && status < 300) return;
        if (status >= 300 && status < 400) throw redirectError(where, status, answer.headers.get('location'));
        if (isRetryableStatus(status)) {
          throw new SinkError(`${where} answered ${status}${answer.body ? `: ${bodySnippet(answer.body)}` : ''}`, true);
        }
        if (REJECT_STATUSES.has(status)) {
          const detail = `${where} refused the batch with HTTP ${status}${answer.body ? `: ${bodySnippet(answer.body)}` : ''}`;
          ctx.logger.debug({ status, items: batch.length }, 'http sink batch refused');
          return { rejected: batch.map((_m, index) => ({ index, error: new BackhaulError('BH_SINK_REJECTED', detail) })) };
        }
        const hint =
          status === 401 || status === 403
            ? ' (check the credentials in headers)'
            : status === 404 || status === 405
              ? ` (check the url and method ${method})`
              : '';
        throw new SinkError(`${where} answered ${status}${hint}${answer.body ? `: ${bodySnippet(answer.body)}` : ''}`, false);
      },

      close() {
        return target.close();
      },
    };
  },
});
