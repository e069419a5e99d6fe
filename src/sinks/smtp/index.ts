// smtp: one mail per notification (or one digest after quiet hours) through an SMTP server, with nodemailer.
// Shared notify behaviour: ../notify.ts. The transport is made in open() and closed in close().
import { Type } from '@sinclair/typebox';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { defineSink, SinkError } from '../../core/driver.js';
import { BackhaulError, errorText } from '../../core/errors.js';
import { Notifier, notifyOptions, notifyProblems, type Note, type SendResult } from '../notify.js';

const Options = Type.Object(
  {
    host: Type.String({ minLength: 1, description: 'SMTP server host name or address.' }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'SMTP port; default 465 with `secure`, else 587.' })),
    secure: Type.Boolean({ default: false, description: 'TLS from the first byte (SMTPS, usually port 465). Otherwise see `starttls`.' }),
    starttls: Type.Union([Type.Literal('required'), Type.Literal('optional'), Type.Literal('never')], {
      default: 'required',
      description:
        'Without `secure`: `required` refuses a server that does not offer STARTTLS, `optional` uses it when offered, `never` sends in clear text (a local relay only).',
    }),
    user: Type.Optional(Type.String({ minLength: 1, description: 'Login user (with `password`); leave both out for a relay that takes mail without a login.' })),
    password: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'Login password; use `{"secret": NAME}`.' })),
    from: Type.String({ minLength: 3, description: 'Sender address, e.g. `"Backhaul <backhaul@example.org>"`.' }),
    to: Type.Array(Type.String({ minLength: 3 }), { minItems: 1, description: 'Recipient addresses.' }),
    subject: Type.String({
      minLength: 1,
      default: '{title}',
      description: 'Subject line; `{title}` is the notification\'s title, `{severity}` its severity (info, warning, critical).',
    }),
    rejectUnauthorized: Type.Boolean({ default: true, description: 'Check the server\'s TLS certificate (turn off only for a test server with a self-signed one).' }),
    timeoutMs: Type.Integer({ minimum: 100, default: 30000, description: 'Give up on connecting, the greeting or a silent connection after this long (retried later).' }),
    ...notifyOptions,
  },
  { additionalProperties: false },
);

/** nodemailer's codes for a failure a later attempt may not meet (the network, the server busy). */
const TRANSIENT = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'EPROTOCOL', 'ESTREAM']);
/** Codes that need an operator: the login, TLS, the configuration. */
const FATAL = new Set(['EAUTH', 'ENOAUTH', 'ETLS', 'EREQUIRETLS', 'ECONFIG']);

interface MailError {
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
}

function mailError(e: unknown): MailError {
  return typeof e === 'object' && e !== null ? e : {};
}

/** A subject from its template. */
export function subjectOf(template: string, note: Note): string {
  return template.replace(/\{(title|severity)\}/g, (_m, k: string) => (k === 'title' ? note.title : note.severity)).replace(/[\r\n]+/g, ' ');
}

export const smtpSink = defineSink({
  kind: 'sink',
  type: 'smtp',
  description: 'Mail notifications through an SMTP server (nodemailer): once per alarm, with quiet hours and a rate limit.',
  options: Options,
  batchSize: 500,
  check(o) {
    const problems = notifyProblems(o);
    if (o.password !== undefined && o.user === undefined) problems.push({ path: 'user', message: 'password is set without user' });
    if (o.user !== undefined && o.password === undefined) problems.push({ path: 'password', message: 'user is set without password' });
    const bad = /\{(?!title\}|severity\})[^}]*\}/.exec(o.subject);
    if (bad) problems.push({ path: 'subject', message: `unknown placeholder ${bad[0]} (use {title} or {severity})` });
    return problems;
  },
  create(o, ctx) {
    const notifier = new Notifier(o, ctx);
    const port = o.port ?? (o.secure ? 465 : 587);
    const where = `smtp://${o.host}:${port}`;
    let transport: Transporter<SMTPTransport.SentMessageInfo> | undefined;

    async function send(note: Note): Promise<SendResult> {
      const t = transport;
      if (!t) throw new SinkError('the smtp sink is not open', false);
      try {
        await t.sendMail({ from: o.from, to: [...o.to], subject: subjectOf(o.subject, note), text: note.text });
        return { sent: true };
      } catch (e) {
        const { code, responseCode, response } = mailError(e);
        const said = response ? `: ${response.replace(/\s+/g, ' ').slice(0, 200)}` : `: ${errorText(e)}`;
        if (code !== undefined && FATAL.has(code)) {
          const hint = code === 'EAUTH' || code === 'ENOAUTH' ? ' (check user and password)' : code === 'ETLS' || code === 'EREQUIRETLS' ? ' (check secure and starttls)' : '';
          throw new SinkError(`${where} ${code}${hint}${said}`, false, { cause: e });
        }
        // The server refused this mail (a recipient, its content) for good: 5xx. 4xx says try again later.
        if ((code === 'EENVELOPE' || code === 'EMESSAGE') && responseCode !== undefined && responseCode >= 500) {
          return { rejected: new BackhaulError('BH_SINK_REJECTED', `${where} refused a notification mail (${responseCode})${said}`) };
        }
        const transient = code === undefined || TRANSIENT.has(code) || (responseCode !== undefined && responseCode < 500);
        throw new SinkError(`${where} ${transient ? 'failed' : 'refused'} (${code ?? 'error'})${said}`, transient || responseCode === undefined, { cause: e });
      }
    }

    return {
      open() {
        const opts: SMTPTransport.Options = {
          host: o.host,
          port,
          secure: o.secure,
          requireTLS: !o.secure && o.starttls === 'required',
          ignoreTLS: !o.secure && o.starttls === 'never',
          ...(o.user !== undefined && o.password !== undefined ? { auth: { user: o.user, pass: o.password } } : {}),
          tls: { rejectUnauthorized: o.rejectUnauthorized },
          connectionTimeout: o.timeoutMs,
          greetingTimeout: o.timeoutMs,
          socketTimeout: o.timeoutMs,
        };
        transport = nodemailer.createTransport(opts);
        ctx.logger.debug({ server: where }, 'smtp sink ready');
        return Promise.resolve();
      },
      write(batch) {
        if (!transport) return Promise.reject(new SinkError('the smtp sink is not open', false));
        return notifier.deliver(batch, send);
      },
      close() {
        transport?.close();
        transport = undefined;
        return Promise.resolve();
      },
    };
  },
});
