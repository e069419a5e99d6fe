// `backhaul devices certificate ID FILE | --fingerprint HEX | --remove`: the client certificate a device may log in
// with at the broker's TLS listeners instead of a password. The registry keeps its SHA-256 fingerprint only; a
// renewed certificate replaces the old one (a connection made with the old one loses its rights at the next refresh).
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { BackhaulError, errorText } from '../../core/errors.js';
import { fingerprintOfDer, normaliseFingerprint } from '../../core/pki.js';
import { json, UsageError } from '../io.js';
import { actor, lookup, type Ctx } from './shared.js';

/** The fingerprint and what the certificate names, from a PEM file; BH_DEVICE_CERTIFICATE when it holds none. */
function readCertificate(file: string): { fingerprint: string; subject: string; validTo: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BackhaulError('BH_DEVICE_CERTIFICATE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? errorText(e)}`, { path: 'FILE' });
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(text);
  } catch (e) {
    throw new BackhaulError('BH_DEVICE_CERTIFICATE', `${file} holds no PEM certificate: ${errorText(e)}`, { path: 'FILE' });
  }
  if (/PRIVATE KEY/.test(text)) throw new BackhaulError('BH_DEVICE_CERTIFICATE', `${file} holds a private key: give the certificate alone (the key stays on the device)`, { path: 'FILE' });
  return { fingerprint: fingerprintOfDer(cert.raw), subject: cert.subject.replace(/\n/g, ', '), validTo: cert.validTo };
}

export async function certificate(c: Ctx): Promise<number> {
  const [raw, file, ...more] = c.args;
  if (raw === undefined || more.length > 0) throw new UsageError('certificate takes a device id and a certificate file (or --fingerprint HEX, or --remove)');
  const given = [file !== undefined, c.v.fingerprint !== undefined, c.v.remove === true].filter(Boolean).length;
  if (given !== 1) throw new UsageError('certificate takes exactly one of: a certificate FILE, --fingerprint HEX, --remove');
  const d = await lookup(c.store, raw, c.v.kind);
  let fingerprint: string | undefined;
  let about: { subject: string; validTo: string } | undefined;
  if (file !== undefined) {
    const r = readCertificate(file);
    fingerprint = r.fingerprint;
    about = r;
  } else if (c.v.fingerprint !== undefined) {
    fingerprint = normaliseFingerprint(c.v.fingerprint);
    if (fingerprint === undefined) throw new BackhaulError('BH_DEVICE_CERTIFICATE', `${JSON.stringify(c.v.fingerprint)} is not a SHA-256 fingerprint (64 hex digits, colons allowed)`, { path: '--fingerprint' });
  }
  const after = await c.store.setCertificate(d.id, fingerprint);
  const changed = after.certificate?.fingerprint !== d.certificate?.fingerprint;
  if (changed) {
    await c.store.appendAudit({
      actor: actor(),
      action: fingerprint === undefined ? 'certificate.remove' : 'certificate.set',
      device: d.id,
      detail: fingerprint === undefined ? {} : { fingerprint },
      result: 'ok',
    });
  }
  if (c.v.json) {
    c.io.out(json({ id: d.id, fingerprint: fingerprint ?? null, changed, ...(about ? { subject: about.subject, validTo: about.validTo } : {}) }));
    return 0;
  }
  if (fingerprint === undefined) {
    c.io.out(changed ? `${d.id}: its certificate is removed; a connection made with it loses its rights at the next refresh` : `${d.id} had no certificate`);
    return 0;
  }
  c.io.out(`${d.id}: logs in with the certificate ${fingerprint}${changed ? '' : ' (unchanged)'}`);
  if (about) c.io.out(`subject ${about.subject}, valid until ${about.validTo}`);
  if (changed && d.certificate !== undefined) c.io.out('The previous certificate no longer logs in.');
  return 0;
}
