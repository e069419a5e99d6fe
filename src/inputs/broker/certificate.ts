// Device certificates at the broker's TLS listeners (mqtts, wss): the client certificate a connection presented, and
// the device id it names. The listeners ask for one when their `tls` section names client CAs (`tls.ca`) and accept
// connections without one, so password logins keep working; a certificate is only taken when its chain verified
// against those CAs (node:tls's `authorized`), and the registry then decides whether it is that device's.
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Client } from 'aedes';
import { fingerprintOfDer, DEVICE_URI_PREFIX } from '../../core/pki.js';

/** Where a device's id is read from in its certificate. */
export type CertificateIdField = 'cn' | 'san-uri' | 'san-dns' | 'san-email';

export type PresentedCertificate =
  /** Verified against the client CAs: the id it names (undefined when the field is missing) and its fingerprint. */
  | { readonly verified: true; readonly id: string | undefined; readonly fingerprint: string }
  /** Presented, but its chain did not verify (unknown CA, expired, not yet valid): OpenSSL's reason. */
  | { readonly verified: false; readonly reason: string };

/** A WebSocket stream keeps the TLS socket it came on here (index.ts), as a TLS connection is its own socket. */
const TLS_SOCKET = Symbol('backhaul.tlsSocket');

export function rememberTlsSocket(stream: Duplex, socket: unknown): void {
  if (isTlsSocket(socket)) Object.defineProperty(stream, TLS_SOCKET, { value: socket });
}

function isTlsSocket(s: unknown): s is TLSSocket {
  return typeof s === 'object' && s !== null && (s as { encrypted?: unknown }).encrypted === true && typeof (s as TLSSocket).getPeerCertificate === 'function';
}

function tlsSocketOf(client: Client): TLSSocket | undefined {
  const conn = client.conn as unknown;
  if (isTlsSocket(conn)) return conn;
  const kept = (conn as Record<symbol, unknown> | undefined)?.[TLS_SOCKET];
  return isTlsSocket(kept) ? kept : undefined;
}

/** SubjectAltName entries as node:tls gives them (`DNS:a, URI:b`; values with a comma come JSON-quoted). */
export function subjectAltNames(text: string | undefined): Array<{ type: string; value: string }> {
  if (text === undefined || text === '') return [];
  const out: Array<{ type: string; value: string }> = [];
  const re = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:,\s*|$)/g;
  for (const m of text.matchAll(re)) {
    const raw = m[2] ?? '';
    let value = raw;
    if (raw.startsWith('"')) {
      try {
        value = JSON.parse(raw) as string;
      } catch {
        value = raw;
      }
    }
    out.push({ type: (m[1] ?? '').trim(), value });
  }
  return out;
}

/** The device id a certificate names in `field`; a `urn:backhaul:device:` URI (backhaul certs) gives the id it escapes. */
export function idFromCertificate(cert: { readonly subject?: { readonly CN?: string | string[] }; readonly subjectaltname?: string }, field: CertificateIdField): string | undefined {
  if (field === 'cn') {
    const cn = cert.subject?.CN;
    return Array.isArray(cn) ? cn[0] : cn;
  }
  const type = field === 'san-uri' ? 'URI' : field === 'san-dns' ? 'DNS' : 'email';
  const sans = subjectAltNames(cert.subjectaltname).filter((s) => s.type === type);
  if (field === 'san-uri') {
    const ours = sans.find((s) => s.value.startsWith(DEVICE_URI_PREFIX));
    if (ours) {
      try {
        return decodeURIComponent(ours.value.slice(DEVICE_URI_PREFIX.length));
      } catch {
        return undefined;
      }
    }
  }
  return sans[0]?.value;
}

/** The client certificate the connection of `client` presented, or undefined for none (or a plain connection). */
export function presentedCertificate(client: Client, field: CertificateIdField): PresentedCertificate | undefined {
  const sock = tlsSocketOf(client);
  if (!sock) return undefined;
  const cert = sock.getPeerCertificate();
  // An empty object when the client sent none.
  if (!cert || !(cert.raw instanceof Buffer) || cert.raw.length === 0) return undefined;
  if (!sock.authorized) return { verified: false, reason: String(sock.authorizationError ?? 'not verified') };
  return { verified: true, id: idFromCertificate(cert, field), fingerprint: fingerprintOfDer(cert.raw) };
}
