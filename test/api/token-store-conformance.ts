// One conformance suite every TokenStore must pass (SqliteTokenStore, PostgresTokenStore): create and verify (right,
// wrong and revoked tokens), names unique among live tokens, list order, revoke, createIfNone / ensureFirstAdmin,
// activeCount, and lastUsedAt written at most once per LAST_USED_RESOLUTION_MS, as a second instance on the same data
// reads it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, type Clock } from '../../src/core/clock.js';
import { BackhaulError, type ErrorCode } from '../../src/core/errors.js';
import { ensureFirstAdmin, LAST_USED_RESOLUTION_MS, type Role, type TokenStore } from '../../src/api/tokens.js';
import { teardown } from '../helpers/context.js';

export const T0 = 1_700_000_000_000;

export interface TokenStoreMaker {
  /** A fresh, empty store; `cleanup` runs after the test, after the stores are closed. */
  make(opts: { clock: Clock; cleanup: (fn: () => unknown) => void }): Promise<{ store: TokenStore; other: () => Promise<TokenStore> }>;
  /** Wait for writes the store sends without waiting (lastUsedAt). */
  settle?(store: TokenStore): Promise<void>;
  readonly skip?: string | false;
}

export async function rejectsCode(fn: () => unknown, code: ErrorCode, path?: string): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BackhaulError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (path !== undefined) assert.equal(caught.path, path, caught.message);
}

export function tokenStoreConformance(name: string, maker: TokenStoreMaker): void {
  const skip = maker.skip ?? false;
  const timeout = 30_000;
  const setup = async (t: { after(fn: () => unknown): void }) => {
    const clock = new ManualClock(T0);
    const cleanup = teardown(t);
    const made = await maker.make({ clock, cleanup });
    cleanup(() => made.store.close());
    const other = async (): Promise<TokenStore> => {
      const o = await made.other();
      cleanup(() => o.close());
      return o;
    };
    return { clock, store: made.store, other };
  };

  test(`${name}: create and verify: the right token verifies, a wrong, malformed, unknown or revoked one does not`, { skip, timeout }, async (t) => {
    const { store } = await setup(t);
    const { info, token } = await store.create('svc', 'operator');
    assert.match(token, /^bh_[0-9a-f]{8}_[A-Za-z0-9_-]{32}$/);
    assert.ok(token.startsWith(`bh_${info.id}_`));
    assert.deepEqual({ name: info.name, role: info.role, createdAt: info.createdAt }, { name: 'svc', role: 'operator', createdAt: T0 });
    assert.equal(store.verify(token)?.id, info.id);
    assert.equal(store.verify(token)?.role, 'operator');
    assert.equal(store.touch(info.id)?.name, 'svc');
    const last = token.slice(-1);
    assert.equal(store.verify(`${token.slice(0, -1)}${last === 'A' ? 'B' : 'A'}`), undefined, 'wrong secret');
    assert.equal(store.verify(`bh_00000000_${token.slice(-32)}`), undefined, 'unknown id');
    for (const bad of ['', 'bh_', token.slice(0, -1), `${token}x`, `Bearer ${token}`, 42 as unknown as string]) assert.equal(store.verify(bad), undefined, String(bad));
    assert.equal(store.touch('zzzzzzzz'), undefined);
    await store.revoke(info.id);
    assert.equal(store.verify(token), undefined, 'revoked');
    assert.equal(store.touch(info.id), undefined, 'revoked');
  });

  test(`${name}: names, roles, list order, revoke, activeCount`, { skip, timeout }, async (t) => {
    const { store, clock } = await setup(t);
    for (const bad of ['', 'x'.repeat(65), 'a\nb', 'tab\there', ' lead', 'trail ', '\u0000']) {
      await rejectsCode(() => store.create(bad, 'viewer'), 'BH_TOKEN_NAME', 'name');
    }
    await rejectsCode(() => store.create('ok', 'root' as Role), 'BH_TOKEN_ROLE', 'role');
    assert.equal((await store.list()).length, 0, 'nothing was created by the refusals');

    const a = await store.create('x'.repeat(64), 'viewer');
    clock.advance(1);
    const b = await store.create('Zoë — dashboard', 'admin');
    clock.advance(1);
    await rejectsCode(() => store.create('Zoë — dashboard', 'viewer'), 'BH_TOKEN_NAME', 'name');
    const dflt = await store.create(undefined, 'operator');
    assert.equal(dflt.info.name, `operator-${dflt.info.id}`);
    assert.deepEqual((await store.list()).map((i) => i.id), [a.info.id, b.info.id, dflt.info.id]);
    assert.equal(await store.activeCount(), 3);

    clock.advance(10);
    const r1 = await store.revoke(b.info.id);
    assert.equal(r1.revokedAt, T0 + 12);
    clock.advance(10);
    assert.equal((await store.revoke(b.info.id)).revokedAt, T0 + 12, 'revoking again keeps the first time');
    assert.equal(store.verify(b.token), undefined);
    assert.equal(store.touch(b.info.id), undefined);
    assert.equal(await store.activeCount(), 2);
    // A revoked token's name is free again; the revoked one stays listed.
    const b2 = await store.create('Zoë — dashboard', 'viewer');
    assert.deepEqual((await store.list()).map((i) => [i.id, i.revokedAt !== undefined]), [
      [a.info.id, false],
      [b.info.id, true],
      [dflt.info.id, false],
      [b2.info.id, false],
    ]);
    assert.equal((await store.get(b.info.id))?.role, 'admin');
    assert.equal(await store.get('zzzzzzzz'), undefined);
    await rejectsCode(() => store.revoke('zzzzzzzz'), 'BH_TOKEN_NOT_FOUND', 'id');
  });

  test(`${name}: createIfNone / ensureFirstAdmin make one admin token on empty data, and never again`, { skip, timeout }, async (t) => {
    const { store, other } = await setup(t);
    const first = await ensureFirstAdmin(store);
    assert.ok(first);
    assert.equal(first.info.name, 'first-admin');
    assert.equal(first.info.role, 'admin');
    assert.equal(store.verify(first.token)?.id, first.info.id);
    assert.equal(await ensureFirstAdmin(store), undefined);
    const second = await other();
    assert.equal(await ensureFirstAdmin(second), undefined, 'another instance on the same data makes none either');
    // Even with every token revoked: an admin locked out uses the CLI, a restart does not hand out a new one.
    await store.revoke(first.info.id);
    assert.equal(await store.activeCount(), 0);
    assert.equal(await ensureFirstAdmin(store), undefined);
    assert.equal((await store.list()).length, 1);
    assert.equal(await store.createIfNone('again', 'viewer'), undefined);
  });

  test(`${name}: data where a token was created first gets no first-admin`, { skip, timeout }, async (t) => {
    const { store } = await setup(t);
    await store.create('cli-made', 'viewer');
    assert.equal(await ensureFirstAdmin(store), undefined);
    assert.deepEqual((await store.list()).map((i) => i.name), ['cli-made']);
  });

  test(`${name}: lastUsedAt is written at most once per ${LAST_USED_RESOLUTION_MS / 1000} s, as another instance reads it`, { skip, timeout }, async (t) => {
    const { store, clock, other } = await setup(t);
    const { info, token } = await store.create('busy', 'viewer');
    assert.equal(info.lastUsedAt, undefined);
    const reader = await other();
    const stored = async () => {
      await maker.settle?.(store);
      return (await reader.get(info.id))?.lastUsedAt;
    };
    clock.advance(5);
    assert.equal(store.verify(token)?.lastUsedAt, T0 + 5);
    assert.equal(await stored(), T0 + 5);
    clock.advance(LAST_USED_RESOLUTION_MS - 1_000);
    assert.equal(store.verify(token)?.lastUsedAt, T0 + 5, 'not rewritten within the resolution');
    assert.equal(store.touch(info.id)?.lastUsedAt, T0 + 5);
    assert.equal(await stored(), T0 + 5);
    clock.advance(1_000);
    assert.equal(store.verify(token)?.lastUsedAt, T0 + LAST_USED_RESOLUTION_MS + 5);
    assert.equal(await stored(), T0 + LAST_USED_RESOLUTION_MS + 5);
    // A failed verification does not count as a use.
    clock.advance(2 * LAST_USED_RESOLUTION_MS);
    assert.equal(store.verify(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`), undefined);
    assert.equal(await stored(), T0 + LAST_USED_RESOLUTION_MS + 5);
    // touch counts as a use.
    assert.equal(store.touch(info.id)?.lastUsedAt, T0 + 3 * LAST_USED_RESOLUTION_MS + 5);
    assert.equal(await stored(), T0 + 3 * LAST_USED_RESOLUTION_MS + 5);
    assert.equal((await store.list())[0]?.lastUsedAt, T0 + 3 * LAST_USED_RESOLUTION_MS + 5);
  });

  test(`${name}: a token made or revoked through another instance on the same data is seen here`, { skip, timeout }, async (t) => {
    const { store, other } = await setup(t);
    const cli = await other();
    const made = await cli.create('from-cli', 'admin');
    const until = async (ok: () => boolean): Promise<boolean> => {
      for (const end = Date.now() + 1000; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) if (ok()) return true;
      return ok();
    };
    assert.ok(await until(() => store.verify(made.token)?.id === made.info.id), 'verifies within a second');
    await cli.revoke(made.info.id);
    assert.ok(await until(() => store.verify(made.token) === undefined), 'refused within a second');
    assert.equal(store.touch(made.info.id), undefined);
  });
}
