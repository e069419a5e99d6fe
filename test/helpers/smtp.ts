// A real SMTP server (smtp-server) on a free port for the smtp sink's tests: it keeps each mail it took, decoded
// enough to read (headers unfolded, quoted-printable and base64 bodies, RFC 2047 subjects).
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface Mail {
  readonly from: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly text: string;
}

export interface SmtpRecorder {
  readonly port: number;
  readonly mails: Mail[];
  /** Decide on each mail: undefined takes it, an SMTP code refuses it (4xx for now, 5xx for good). */
  answer: (mail: Mail) => number | undefined;
  close(): Promise<void>;
}

function decodeWords(s: string): string {
  return s.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_m, _cs: string, enc: string, data: string) =>
    enc.toUpperCase() === 'B'
      ? Buffer.from(data, 'base64').toString('utf8')
      : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'),
  );
}

/** A mail's subject and plain-text body from its raw form (single-part text/plain, as the smtp sink sends). */
export function parseMail(raw: string): { subject: string; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = (split < 0 ? raw : raw.slice(0, split)).replace(/\r\n[ \t]+/g, ' ');
  let body = split < 0 ? '' : raw.slice(split + 4);
  const header = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head)?.[1]?.trim() ?? '';
  const cte = header('Content-Transfer-Encoding').toLowerCase();
  if (cte === 'quoted-printable') {
    const bytes = body.replace(/=\r\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16)));
    body = Buffer.from(bytes, 'latin1').toString('utf8');
  } else if (cte === 'base64') body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return { subject: decodeWords(header('Subject')), text: body.replace(/\r\n/g, '\n').replace(/\n$/, '') };
}

/** An SMTP server without TLS (the sink is told `starttls: "never"`), with a login when `login` is given. */
export async function smtpRecorder(login?: { user: string; password: string }, extra: Partial<SMTPServerOptions> = {}): Promise<SmtpRecorder> {
  const mails: Mail[] = [];
  const rec: SmtpRecorder = {
    port: 0,
    mails,
    answer: () => undefined,
    close: () => Promise.resolve(),
  };
  const server = new SMTPServer({
    logger: false,
    disabledCommands: login ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: !login,
    allowInsecureAuth: true,
    onAuth(auth, _session, cb) {
      if (login && auth.username === login.user && auth.password === login.password) cb(null, { user: auth.username });
      else cb(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const { subject, text } = parseMail(Buffer.concat(chunks).toString('latin1'));
        const mail: Mail = {
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          subject,
          text,
        };
        const code = rec.answer(mail);
        if (code === undefined) {
          mails.push(mail);
          cb();
        } else cb(Object.assign(new Error(code >= 500 ? 'Message refused' : 'Try again later'), { responseCode: code }));
      });
    },
    ...extra,
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return Object.assign(rec, {
    port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
}
