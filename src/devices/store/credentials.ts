// Device logins in the store: usernames and password hashes (never passwords; hashing itself is
// src/devices/credentials.ts), the bootstrap claim windows and claim codes, and the interface every store's part for
// them implements (CredentialStore), with its SQLite implementation over the devices table.
import { BackhaulError, shown } from '../../core/errors.js';
import type { LoginHasher } from '../credentials.js';
import type { Device } from '../types.js';
import { SqlitePart, toDevice, type DeviceRow, type RegistryConnection } from './sqlite.js';

export interface NewCredentials {
  readonly username: string;
  /** Its hash (`logins.hash` of a generated password, src/devices/credentials.ts); absent to leave one pending for the bootstrap call. */
  readonly hash?: string;
  readonly passwordIssued: boolean;
}

export interface RehashItem {
  readonly id: string;
  readonly from: string;
  readonly to: string;
}

/**
 * The logins of devices. Throws BackhaulErrors: BH_DEVICE_NOT_FOUND, BH_DEVICE_EXISTS (a username taken),
 * BH_DEVICE_READ_ONLY (config devices' logins are the config's), BH_DEVICE_CLAIMED. Ids are canonical ids.
 */
export interface CredentialStore {
  /** Hashes generated passwords and verifies stored ones with this registry's own key (src/devices/credentials.ts). */
  readonly logins: LoginHasher;
  getByUsername(username: string): Promise<Device | undefined>;
  /**
   * Set a device's login. With `onlyIfPending`, only when its password has not been handed out yet (the bootstrap
   * call: two concurrent calls must not both deliver one); returns false when that condition failed.
   */
  setCredentials(id: string, creds: NewCredentials, opts?: { readonly onlyIfPending?: boolean }): Promise<boolean>;
  /**
   * Invalidate the password: the old one stops working, and the next bootstrap call in an open claim window delivers
   * a new one. Forgets the last claim (when and by whom).
   */
  resetCredentials(id: string): Promise<Device>;
  /**
   * Open the claim window of these devices (canonical ids), or of every registry device whose password is still
   * pending (`'unclaimed'`), until `until` (ms). Refused for a device whose password was handed out already
   * (BH_DEVICE_CLAIMED: reset its credentials first) and for config devices (BH_DEVICE_READ_ONLY). Returns the ids.
   */
  openClaimWindows(target: readonly string[] | 'unclaimed', until: number): Promise<string[]>;
  /** Close the windows of these devices, or every open one (`'all'`); returns the ids that had one open. */
  closeClaimWindows(target: readonly string[] | 'all'): Promise<string[]>;
  /** Set the claim code's scrypt hash, or remove it (undefined). BH_DEVICE_READ_ONLY for config devices. */
  setClaimCode(id: string, codeHash: string | undefined): Promise<Device>;
  /**
   * The bootstrap claim, atomic: only while the password is pending and the claim window is open at `at` (default
   * now), store the login as issued, record when and by whom (a client address), and close the window. False when a
   * condition failed (another call claimed it first, or the window is closed).
   */
  claimCredentials(id: string, creds: { readonly username: string; readonly hash: string }, by: string, at?: number): Promise<boolean>;
  /**
   * Replace password hashes in place (a generated password moved from scrypt to the fast format on a successful
   * login): each only while the registry device still has exactly `from`, so a reset or a new password since wins, and
   * without changing when its login was set (connections made with it keep their rights). Config devices are never
   * changed: their passwords are a person's. Returns how many changed; one transaction where the store has them.
   */
  rehashCredentials(items: readonly RehashItem[]): Promise<number>;
  /**
   * Set the client certificate a device may log in with (its SHA-256 fingerprint, 64 lower-case hex digits), or remove
   * it (undefined). BH_DEVICE_READ_ONLY for config devices; BH_DEVICE_EXISTS when another device has that certificate.
   */
  setCertificate(id: string, fingerprint: string | undefined): Promise<Device>;
  /** The device whose certificate has this fingerprint. */
  getByCertificate(fingerprint: string): Promise<Device | undefined>;
}

/** Logins in the devices table, on the registry file's shared connection (index.ts opens it). */
export class SqliteCredentialStore extends SqlitePart implements CredentialStore {
  constructor(
    conn: RegistryConnection,
    readonly logins: LoginHasher,
  ) {
    super(conn);
  }

  getByUsername(username: string): Promise<Device | undefined> {
    return this.read(() => {
      const r = this.stmt('SELECT * FROM devices WHERE username = ?').get(username) as DeviceRow | undefined;
      return r ? toDevice(r) : undefined;
    });
  }

  setCredentials(id: string, creds: NewCredentials, opts: { readonly onlyIfPending?: boolean } = {}): Promise<boolean> {
    return this.tx(() => {
      const d = this.mustBeWritable(id);
      if (opts.onlyIfPending && d.credentials?.passwordIssued) return false;
      const owner = this.stmt('SELECT id FROM devices WHERE username = ?').pluck().get(creds.username) as string | undefined;
      if (owner !== undefined && owner !== id) {
        throw new BackhaulError('BH_DEVICE_EXISTS', `the username ${shown(creds.username)} belongs to device ${shown(owner)}`, { path: 'username' });
      }
      this.stmt('UPDATE devices SET username = ?, password_hash = ?, password_issued = ?, credentials_at = ? WHERE id = ?').run(
        creds.username,
        creds.hash ?? null,
        creds.passwordIssued ? 1 : 0,
        this.clock.now(),
        id,
      );
      return true;
    });
  }

  resetCredentials(id: string): Promise<Device> {
    return this.tx(() => {
      const d = this.mustBeWritable(id);
      this.stmt(
        'UPDATE devices SET username = ?, password_hash = NULL, password_issued = 0, credentials_at = ?, claimed_at = NULL, claimed_by = NULL WHERE id = ?',
      ).run(d.credentials?.username ?? d.id, this.clock.now(), id);
      return this.mustGet(id);
    });
  }

  openClaimWindows(target: readonly string[] | 'unclaimed', until: number): Promise<string[]> {
    return this.tx(() => {
      let ids: string[];
      if (target === 'unclaimed') {
        ids = this.stmt("SELECT id FROM devices WHERE source = 'registry' AND password_issued = 0 ORDER BY id").pluck().all() as string[];
      } else {
        ids = [...new Set(target)];
        for (const id of ids) {
          const d = this.mustBeWritable(id);
          if (d.credentials?.passwordIssued) {
            throw new BackhaulError('BH_DEVICE_CLAIMED', `device ${shown(id)} has had its password already; reset its credentials for bootstrap first`, {
              path: 'id',
            });
          }
        }
      }
      const set = this.stmt('UPDATE devices SET claim_until = ? WHERE id = ?');
      for (const id of ids) set.run(Math.round(until), id);
      return ids;
    });
  }

  closeClaimWindows(target: readonly string[] | 'all'): Promise<string[]> {
    return this.tx(() => {
      const open = this.stmt('SELECT id FROM devices WHERE claim_until IS NOT NULL ORDER BY id').pluck().all() as string[];
      const ids = target === 'all' ? open : open.filter((id) => target.includes(id));
      const clear = this.stmt('UPDATE devices SET claim_until = NULL WHERE id = ?');
      for (const id of ids) clear.run(id);
      return ids;
    });
  }

  setClaimCode(id: string, codeHash: string | undefined): Promise<Device> {
    return this.tx(() => {
      this.mustBeWritable(id);
      this.stmt('UPDATE devices SET claim_code_hash = ? WHERE id = ?').run(codeHash ?? null, id);
      return this.mustGet(id);
    });
  }

  claimCredentials(id: string, creds: { readonly username: string; readonly hash: string }, by: string, at?: number): Promise<boolean> {
    return this.tx(() => {
      const now = at ?? this.clock.now();
      const owner = this.stmt('SELECT id FROM devices WHERE username = ?').pluck().get(creds.username) as string | undefined;
      if (owner !== undefined && owner !== id) {
        throw new BackhaulError('BH_DEVICE_EXISTS', `the username ${shown(creds.username)} belongs to device ${shown(owner)}`, { path: 'username' });
      }
      const r = this.stmt(
        `UPDATE devices SET username = @username, password_hash = @hash, password_issued = 1, credentials_at = @now,
           claimed_at = @now, claimed_by = @by, claim_until = NULL
         WHERE id = @id AND source = 'registry' AND password_issued = 0 AND claim_until IS NOT NULL AND claim_until > @now`,
      ).run({ id, username: creds.username, hash: creds.hash, now, by });
      return r.changes > 0;
    });
  }

  setCertificate(id: string, fingerprint: string | undefined): Promise<Device> {
    return this.tx(() => {
      this.mustBeWritable(id);
      if (fingerprint !== undefined) {
        if (!/^[0-9a-f]{64}$/.test(fingerprint)) throw new BackhaulError('BH_DEVICE_CERTIFICATE', `${shown(fingerprint)} is not a SHA-256 fingerprint (64 lower-case hex digits)`, { path: 'fingerprint' });
        const owner = this.stmt('SELECT id FROM devices WHERE cert_fingerprint = ?').pluck().get(fingerprint) as string | undefined;
        if (owner !== undefined && owner !== id) throw new BackhaulError('BH_DEVICE_EXISTS', `that certificate belongs to device ${shown(owner)}`, { path: 'fingerprint' });
      }
      this.stmt('UPDATE devices SET cert_fingerprint = ?, cert_at = ? WHERE id = ?').run(fingerprint ?? null, fingerprint === undefined ? null : this.clock.now(), id);
      return this.mustGet(id);
    });
  }

  getByCertificate(fingerprint: string): Promise<Device | undefined> {
    return this.read(() => {
      const r = this.stmt('SELECT * FROM devices WHERE cert_fingerprint = ?').get(fingerprint) as DeviceRow | undefined;
      return r ? toDevice(r) : undefined;
    });
  }

  rehashCredentials(items: readonly RehashItem[]): Promise<number> {
    return this.tx(() => {
      const set = this.stmt("UPDATE devices SET password_hash = @to WHERE id = @id AND password_hash = @from AND source = 'registry'");
      return items.reduce((n, i) => n + set.run({ id: i.id, from: i.from, to: i.to }).changes, 0);
    });
  }
}
