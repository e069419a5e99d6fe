// webhook: chat incoming webhooks (Slack, Mattermost, Discord). One POST per notification (or one digest after quiet
// hours): `{"text": ...}` for Slack and Mattermost, `{"content": ...}` for Discord. Shared notify behaviour: ../notify.ts.
import { TlsClientSchema, tlsConfigProblems } from '../../core/tls-client.js';
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import { bodySnippet, HttpTarget, isRetryableStatus, redirectError } from '../http-client.js';
import { Notifier, notifyOptions, notifyProblems, type Note, type SendResult } from '../notify.js';

const Options = Type.Object(
  {
    // No schema pattern: the value is usually a secret, checked when the sink opens.
    url: Type.String({
      minLength: 1,
      secret: true,
      urlCredentials: true,
      description: 'The incoming webhook\'s URL (http:// or https://, checked when the sink opens); it is the credential (anyone holding it may post), so give it as `{"secret": NAME}`.',
    }),
    style: Type.Union([Type.Literal('slack'), Type.Literal('mattermost'), Type.Literal('discord')], {
      default: 'slack',
      description: 'Body shape: `slack` and `mattermost` send `{"text": ...}`, `discord` sends `{"content": ...}`.',
    }),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 80, description: 'Name the messages are shown from (where the webhook allows it).' })),
    timeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'Give up on a request after this long (retried later).' }),
    tls: Type.Optional(TlsClientSchema),
    ...notifyOptions,
  },
  { additionalProperties: false },
);

const FATAL_STATUSES = new Set([401, 403, 404, 410]);
/** Discord refuses content over 2000 characters; Slack and Mattermost take far more. */
const DISCORD_MAX = 2000;

/** The request body for a style. */
export function webhookBody(style: 'slack' | 'mattermost' | 'discord', note: Note, username: string | undefined): string {
  const text = `*${note.title}*\n${note.text}`;
  if (style === 'discord') {
    const content = `**${note.title}**\n${note.text}`;
    return JSON.stringify({ content: content.length > DISCORD_MAX ? `${content.slice(0, DISCORD_MAX - 1)}…` : content, ...(username ? { username } : {}) });
  }
  return JSON.stringify({ text, ...(username ? { username } : {}) });
}

function retryAfterMs(h: string | null): number | undefined {
  const s = h === null ? NaN : Number(h.trim());
  return Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}

export const webhookSink = defineSink({
  kind: 'sink',
  type: 'webhook',
  description: 'Chat notifications through a Slack, Mattermost or Discord incoming webhook: once per alarm, with quiet hours and a rate limit.',
  options: Options,
  batchSize: 500,
  check(o) {
    return [...notifyProblems(o), ...tlsConfigProblems(o.tls, o.url)];
  },
  create(o, ctx) {
    const target = new HttpTarget(o.url, 'webhook', { options: o.tls, ctx });
    const notifier = new Notifier(o, ctx);

    async function send(note: Note): Promise<SendResult> {
      const answer = await target.send({ url: target.url, method: 'POST', body: webhookBody(o.style, note, o.username), timeoutMs: o.timeoutMs });
      const where = target.where;
      const { status } = answer;
      const detail = answer.body ? `: ${bodySnippet(answer.body)}` : '';
      if (status >= 200 && status < 300) return { sent: true };
      if (status >= 300 && status < 400) throw redirectError(where, status, answer.headers.get('location'));
      if (status === 429) {
        const after = retryAfterMs(answer.headers.get('retry-after'));
        throw new SinkError(`${where} answered 429 (too many requests)${detail}`, true, after === undefined ? {} : { retryAfterMs: after });
      }
      if (isRetryableStatus(status)) throw new SinkError(`${where} answered ${status}${detail}`, true);
      if (FATAL_STATUSES.has(status)) throw new SinkError(`${where} answered ${status} (check the webhook url: it may have been revoked)${detail}`, false);
      if (status === 400 || status === 413 || status === 422) {
        return { rejected: new BackhaulError('BH_SINK_REJECTED', `${where} refused a notification with HTTP ${status}${detail}`) };
      }
      throw new SinkError(`${where} answered ${status}${detail}`, false);
    }

    return {
      async open() {
        // The url is checked here, not at each write: a malformed one is an operator's to fix.
        if (!/^https?:\/\//i.test(o.url)) throw new SinkError('the url option is not an http:// or https:// URL (the webhook\'s URL)', false);
        await target.open({ 'Content-Type': 'application/json' });
        ctx.logger.debug({ url: target.where, style: o.style }, 'webhook sink ready');
      },
      write(batch) {
        target.assertOpen();
        return notifier.deliver(batch, send);
      },
      close() {
        return target.close();
      },
    };
  },
});
