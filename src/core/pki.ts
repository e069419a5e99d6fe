// A small site's PKI as pure functions over @peculiar/x509: a local CA, server certificates for the concentrator's host
// names and addresses, client certificates for devices, and what a certificate says (`describeCertificate`). No file
// I/O here (`backhaul certs`, src/cli/certs.ts, writes the files). Node's WebCrypto is passed to every library call
// rather than set as the library's global provider; importing this module changes nothing (the first call loads the
// library: see `library()`).
// Keys are ECDSA P-256 (small, fast on a microcontroller's TLS stack, accepted everywhere), exported as PKCS#8 PEM;
// certificates are signed ECDSA with SHA-256.
import { createHash, webcrypto } from 'node:crypto';
import type { JsonGeneralNames, X509Certificate } from '@peculiar/x509';
import { BackhaulError, shown } from './errors.js';

type X509 = typeof import('@peculiar/x509');
type Crypto = webcrypto.Crypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 86_400_000;
/** notBefore is set this far back, so a device whose clock runs a little behind accepts a certificate made just now. */
const BACKDATE_MS = 3_600_000;
/** The longest validity `days` takes (100 years): beyond it is a typo, and some TLS stacks mishandle far dates. */
export const MAX_DAYS = 36_500;

/**
 * The library, loaded when a PKI function first runs (so `backhaul start` never loads it). @peculiar/x509 registers
 * its algorithms with tsyringe, which refuses to load without a Reflect metadata polyfill (the library's README says
 * to import one first). Nothing records decorator metadata here (tslib's decorators record it only when
 * `Reflect.metadata` exists, and it does not), so the two readers tsyringe calls answering "none" is what a full
 * polyfill would answer; they are added only when absent. The `reflect-metadata` package would replace this.
 */
async function library(): Promise<X509> {
  const r = Reflect as unknown as Record<string, unknown>;
  r['getMetadata'] ??= (): undefined => undefined;
  r['getOwnMetadata'] ??= (): undefined => undefined;
  return import('@peculiar/x509');
}

/** The URI a device certificate names its device by (its subjectAltName); the id is also the subject's CN. */
export const DEVICE_URI_PREFIX = 'urn:backhaul:device:';

/** A certificate and its private key, both PEM (the key PKCS#8, unencrypted: the file mode keeps it private). */
export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CertificateInfo {
  /** Distinguished names as the library prints them, e.g. `CN=Backhaul site CA`. */
  readonly subject: string;
  readonly issuer: string;
  /** The subject's common name, when it has one. */
  readonly commonName: string | undefined;
  /** subjectAltName entries: `DNS:host`, `IP:127.0.0.1`, `URI:urn:backhaul:device:…`. */
  readonly sans: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 of the DER certificate: 64 lower-case hex digits, no separators (what device-certificate logins store). */
  readonly fingerprint256: string;
  readonly serialNumber: string;
  readonly isCA: boolean;
}

export interface CaParams {
  /** The CA's common name. */
  readonly name: string;
  readonly days: number;
  /** The time the certificate is made at (ms since the epoch): the caller's clock. */
  readonly now: number;
}

export interface ServerParams {
  readonly ca: Issued;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly days: number;
  readonly now: number;
}

export interface DeviceParams {
  readonly ca: Issued;
  /** The device's canonical id (src/core/ids.ts): the subject's CN, and in the URI SAN. */
  readonly deviceId: string;
  readonly days: number;
  readonly now: number;
}

/** `days` as a validity: a whole number from 1 to MAX_DAYS; BH_CERT_DAYS at `path` otherwise. */
export function checkDays(days: number, path = 'days'): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new BackhaulError('BH_CERT_DAYS', `${shown(String(days))} is not a number of days from 1 to ${MAX_DAYS}`, { path });
  }
  return days;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * True for a dotted-quad IPv4 address (no leading zeros, which some read as octal) or an IPv6 address. Not node:net's
 * isIP: core imports no networking module (test/architecture.test.ts); WHATWG URL parsing checks IPv6 the same way.
 */
export function isIpAddress(s: string): boolean {
  if (IPV4.test(s)) return true;
  if (!s.includes(':') || /[[\]/%]/.test(s)) return false;
  try {
    new URL(`http://[${s}]/`);
    return true;
  } catch {
    return false;
  }
}

/** An IPv4 or IPv6 address as written; BH_CERT_IP at `path` when it is not one. */
export function checkIp(ip: string, path = 'ip'): string {
  if (!isIpAddress(ip)) throw new BackhaulError('BH_CERT_IP', `${shown(ip)} is not an IPv4 or IPv6 address`, { path });
  return ip;
}

/**
 * A DNS name for a server certificate (lower-cased): labels of letters, digits and `-` (a leading `*.` for a
 * wildcard), at most 253 characters. BH_CERT_HOST at `path` otherwise; an IP address belongs in `--ip`.
 */
export function checkHost(host: string, path = 'host'): string {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  const labels = (h.startsWith('*.') ? h.slice(2) : h).split('.');
  const ok = !isIpAddress(h) && h.length > 0 && h.length <= 253 && labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l));
  if (!ok) throw new BackhaulError('BH_CERT_HOST', `${shown(host)} is not a DNS host name${isIpAddress(host.trim()) ? ' (an address goes in --ip)' : ''}`, { path });
  return h;
}

/** A CA's name (its CN), trimmed: 1 to 64 characters (X.520's upper bound for a CN); BH_CERT_NAME at `path` otherwise. */
export function checkCaName(name: string, path = 'name'): string {
  const n = name.trim();
  if (n === '' || n.length > 64 || [...n].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) throw new BackhaulError('BH_CERT_NAME', `${shown(name)} is not a CA name of 1 to 64 printable characters`, { path });
  return n;
}

/** The URI SAN of a device: the prefix and the id, characters outside RFC 3986's unreserved set and `:` escaped. */
export function deviceUri(deviceId: string): string {
  return DEVICE_URI_PREFIX + deviceId.replace(/[^A-Za-z0-9\-._~:]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** A positive 127-bit serial (RFC 5280: positive, at most 20 octets; random, so two runs never collide). */
function serialNumber(crypto: Crypto): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01;
  return Buffer.from(b).toString('hex');
}

function validity(now: number, days: number): { notBefore: Date; notAfter: Date } {
  checkDays(days);
  // Certificates keep whole seconds: round the end up, so a certificate made for N days has N whole days left.
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(Math.ceil((now + days * DAY_MS) / 1000) * 1000) };
}

/** A CN for a Name: the library parses the string form, so `,`, `+`, `=` and the like are escaped. */
function cn(name: string): string {
  return `CN=${name.replace(/([,+="\\<>;#])/g, '\\$1')}`;
}

async function newKeys(crypto: Crypto): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC, true, ['sign', 'verify']);
}

async function keyPem(x509: X509, key: CryptoKey, crypto: Crypto): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** The CA's certificate and signing key, checked to belong together. BH_CERT_READ / BH_CERT_KEY at `ca`. */
async function loadCa(x509: X509, ca: Issued, crypto: Crypto): Promise<{ cert: X509Certificate; key: CryptoKey }> {
  const cert = parseCert(x509, ca.certPem, 'ca');
  if (!isCa(x509, cert)) throw new BackhaulError('BH_CERT_READ', 'the CA file holds a certificate that is not a CA (basicConstraints CA:TRUE)', { path: 'ca' });
  let key: CryptoKey;
  try {
    const der = x509.PemConverter.decodeFirst(ca.keyPem);
    key = await crypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
  } catch (e) {
    throw new BackhaulError('BH_CERT_READ', 'the CA key is not a PKCS#8 PEM ECDSA P-256 private key', { path: 'ca', cause: e });
  }
  // A key from another CA would sign certificates nobody can verify: prove the pair by a signature.
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const sig = await crypto.subtle.sign(SIGNING, key, probe);
  const pub = await crypto.subtle.importKey('spki', cert.publicKey.rawData, EC, false, ['verify']);
  if (!(await crypto.subtle.verify(SIGNING, pub, sig, probe))) {
    throw new BackhaulError('BH_CERT_KEY', 'the CA key does not belong to the CA certificate', { path: 'ca' });
  }
  return { cert, key };
}

function parseCert(x509: X509, pem: string, path: string): X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (e) {
    throw new BackhaulError('BH_CERT_READ', 'not a PEM X.509 certificate', { path, cause: e });
  }
}

function isCa(x509: X509, cert: X509Certificate): boolean {
  return cert.getExtension(x509.BasicConstraintsExtension)?.ca === true;
}

/** A self-signed CA: basicConstraints CA:TRUE (critical), keyUsage keyCertSign and cRLSign (critical), subject CN = `name`. */
export async function makeCa(p: CaParams, crypto: Crypto = webcrypto): Promise<Issued> {
  const name = checkCaName(p.name);
  const x509 = await library();
  const keys = await newKeys(crypto);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(crypto),
      name: cn(name),
      ...validity(p.now, p.days),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        // pathLen 0: this CA signs end certificates only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await keyPem(x509, keys.privateKey, crypto) };
}

async function issue(
  ca: Issued,
  subject: string,
  names: JsonGeneralNames,
  usage: string,
  days: number,
  now: number,
  crypto: Crypto,
): Promise<Issued> {
  const v = validity(now, days);
  const x509 = await library();
  const { cert: caCert, key: caKey } = await loadCa(x509, ca, crypto);
  const keys = await newKeys(crypto);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(crypto),
      subject: cn(subject),
      issuer: caCert.subjectName,
      ...v,
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([usage], false),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await keyPem(x509, keys.privateKey, crypto) };
}

/**
 * A server certificate signed by the CA: the DNS names and IP addresses as SANs (clients check the name they dialled
 * against these, not the CN), extKeyUsage serverAuth. The CN is the first name (or address), for people reading it.
 */
export async function makeServerCert(p: ServerParams, crypto: Crypto = webcrypto): Promise<Issued> {
  const dns = p.dnsNames.map((h, i) => checkHost(h, `host[${i}]`));
  const ips = p.ipAddresses.map((ip, i) => checkIp(ip, `ip[${i}]`));
  const first = dns[0] ?? ips[0];
  if (first === undefined) throw new BackhaulError('BH_CERT_HOST', 'a server certificate needs at least one host name or address', { path: 'host' });
  const names: JsonGeneralNames = [...dns.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))];
  return issue(p.ca, first, names, (await library()).ExtendedKeyUsage.serverAuth, p.days, p.now, crypto);
}

/**
 * A device's client certificate signed by the CA: subject CN = the device id, one SAN, the URI
 * `urn:backhaul:device:<id>` (no DNS name: a device is not a host anyone dials), extKeyUsage clientAuth.
 */
export async function makeDeviceCert(p: DeviceParams, crypto: Crypto = webcrypto): Promise<Issued> {
  if (!/^[\x21-\x7e]{1,128}$/.test(p.deviceId)) throw new BackhaulError('BH_DEVICE_ID', `${shown(p.deviceId)} is not a canonical device id`, { path: 'id' });
  return issue(p.ca, p.deviceId, [{ type: 'url', value: deviceUri(p.deviceId) }], (await library()).ExtendedKeyUsage.clientAuth, p.days, p.now, crypto);
}

const SAN_PREFIX: Readonly<Record<string, string>> = { dns: 'DNS', ip: 'IP', url: 'URI', email: 'email', dn: 'DirName', guid: 'GUID', upn: 'UPN', id: 'RID' };

/** What a PEM certificate says (the first one in `pem`). BH_CERT_READ when it is not one. */
export async function describeCertificate(pem: string, crypto: Crypto = webcrypto): Promise<CertificateInfo> {
  const x509 = await library();
  const cert = parseCert(x509, pem, 'certificate');
  let sans: string[] = [];
  try {
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    sans = san ? san.names.toJSON().map((n) => `${SAN_PREFIX[n.type] ?? n.type}:${n.value}`) : [];
  } catch (e) {
    throw new BackhaulError('BH_CERT_READ', 'the certificate\'s subjectAltName cannot be read', { path: 'certificate', cause: e });
  }
  const cnAttr = cert.subjectName.getField('CN')[0];
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    commonName: cnAttr,
    sans,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    fingerprint256: Buffer.from(await cert.getThumbprint('SHA-256', crypto)).toString('hex'),
    serialNumber: cert.serialNumber,
    isCA: isCa(x509, cert),
  };
}

/** True when `pem`'s signature verifies with the CA certificate's key (a CA made anew with --force fails this). */
export async function isSignedBy(pem: string, caPem: string, crypto: Crypto = webcrypto): Promise<boolean> {
  const x509 = await library();
  const cert = parseCert(x509, pem, 'certificate');
  const ca = parseCert(x509, caPem, 'ca');
  try {
    return await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }, crypto);
  } catch {
    return false; // a key of another algorithm, say: not signed by this CA
  }
}

/** The PEM block types in `text` (`CERTIFICATE`, `PRIVATE KEY`, …), in order: to tell a key file from a certificate without trusting its name. */
export function pemTypes(text: string): string[] {
  return [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]!);
}

/**
 * The fingerprint form this module prints and device-certificate logins store, from a certificate's DER bytes (what
 * node:tls gives as `getPeerCertificate().raw`): SHA-256, 64 lower-case hex digits.
 */
export function fingerprintOfDer(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/**
 * A SHA-256 fingerprint as people paste it (OpenSSL's and Node's `AB:CD:…`, any case, with or without colons) in the
 * form above; undefined when it is not 32 bytes of hex.
 */
export function normaliseFingerprint(s: string): string | undefined {
  const hex = s.trim().toLowerCase().replace(/^sha256 fingerprint=/, '').replace(/:/g, '');
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}
