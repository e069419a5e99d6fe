// /api/v1/devices, /device-types and /commands: the registry and orders (docs/api.md).
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { BackhaulError, isBackhaulError } from '../../core/errors.js';
import {
  addDevice,
  checkClaimCode,
  claimWindowMs,
  closeClaimWindows,
  openClaimWindows,
  resetDeviceCredentials,
  setClaimCode,
} from '../../devices/provision.js';
import { findDevice } from '../../devices/store/rules.js';
import type { DeviceFilter, DevicePatch } from '../../devices/store/devices.js';
import { COMMAND_STATUSES } from '../../devices/store/orders.js';
import { DEVICE_STATES, ID_KINDS, type Device } from '../../devices/types.js';
import { ApiError, errorResponses } from '../server.js';
import { actorOf } from './audit.js';
import { AuditView, CommandView, DeviceView, deviceView, type ApiDeps } from './deps.js';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200, description: 'Device id, any spelling.' }) });

const ListQuery = Type.Object(
  {
    site: Type.Optional(Type.String()),
    building: Type.Optional(Type.String()),
    room: Type.Optional(Type.String()),
    type: Type.Optional(Type.String()),
    state: Type.Optional(Type.Union(DEVICE_STATES.map((s) => Type.Literal(s)))),
    tag: Type.Optional(Type.String()),
    search: Type.Optional(Type.String({ maxLength: 200 })),
    enabled: Type.Optional(Type.Boolean()),
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
    offset: Type.Integer({ minimum: 0, default: 0 }),
  },
  { additionalProperties: false },
);

const LocationBody = Type.Object(
  { site: Type.Optional(Type.String()), building: Type.Optional(Type.String()), room: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
const ThresholdsBody = Type.Object(
  {
    maxSilentMs: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
    batteryFloor: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object(
  {
    type: Type.Optional(Type.String({ minLength: 1 })),
    location: Type.Optional(LocationBody),
    description: Type.Optional(Type.String()),
    tags: Type.Optional(Type.Array(Type.String())),
    thresholds: Type.Optional(ThresholdsBody),
    config: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { additionalProperties: false },
);
// One object, not an intersection: Fastify's Ajv removes properties a sub-schema with additionalProperties: false
// does not name, so an allOf would strip the other half.
const CreateBody = Type.Object(
  {
    ...PatchBody.properties,
    id: Type.String({ minLength: 1, maxLength: 200 }),
    kind: Type.Optional(Type.Union(ID_KINDS.map((k) => Type.Literal(k)))),
    type: Type.String({ minLength: 1 }),
    enabled: Type.Optional(Type.Boolean()),
    bootstrap: Type.Optional(Type.Boolean({ description: 'Make no password now: the device\'s first bootstrap call (in its claim window) receives one.' })),
    claimCode: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'The claim code on the device\'s label; only its hash is kept.' })),
  },
  { additionalProperties: false },
);
const Issued = Type.Object({ device: DeviceView, username: Type.String(), password: Type.Optional(Type.String()) });
const BlockBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500, description: 'Why, shown on the device and in its alarm.' })) }, { additionalProperties: false });
const ResetBody = Type.Object({ bootstrap: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const ClaimFor = Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 1000 })], {
  description: 'How long the window stays open: a duration (`30m`, `2h`, `1d`, at most 30 days) or ms; default 30m.',
});
const ClaimBody = Type.Object({ for: Type.Optional(ClaimFor) }, { additionalProperties: false });
const ClaimAllBody = Type.Object({ allUnclaimed: Type.Literal(true), for: Type.Optional(ClaimFor) }, { additionalProperties: false });
const ClaimAnswer = Type.Object({ devices: Type.Array(Type.String()), until: Type.Number({ description: 'When the windows close, ms.' }) });
const ClaimCodeBody = Type.Object({ code: Type.String({ maxLength: 128 }) }, { additionalProperties: false });
const CommandBody = Type.Object(
  {
    order: Type.String({ minLength: 1, maxLength: 64 }),
    params: Type.Optional(Type.Object({}, { additionalProperties: true })),
    force: Type.Optional(Type.Boolean({ description: 'Send it to a device that never connected too.' })),
    downlink: Type.Optional(
      Type.Object(
        {
          hex: Type.Optional(Type.String({ minLength: 2, maxLength: 726 })),
          base64: Type.Optional(Type.String({ minLength: 4, maxLength: 324 })),
          fPort: Type.Integer({ minimum: 1, maximum: 223 }),
        },
        { additionalProperties: false, description: 'A LoRaWAN device\'s downlink as bytes (hex or base64) and an fPort, instead of its codec encoding the order.' },
      ),
    ),
  },
  { additionalProperties: false },
);
const CommandQuery = Type.Object(
  {
    device: Type.Optional(Type.String()),
    status: Type.Optional(Type.Union(COMMAND_STATUSES.map((s) => Type.Literal(s)))),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  },
  { additionalProperties: false },
);

/** A store's error about a body field, with the path as the API names it (`body.location.room`). */
function inBody(e: unknown): never {
  if (isBackhaulError(e) && e.path !== undefined && !e.path.startsWith('body')) {
    throw new BackhaulError(e.code, e.detail, { path: `body.${e.path}`, cause: e });
  }
  throw e;
}

export function deviceRoutes(deps: ApiDeps): (app: FastifyInstance) => void {
  const view = (d: Device) => deviceView(d, deps);
  const find = (raw: string) => findDevice(deps.store, raw, undefined, 'params.id');

  return (app) => {
    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/api/v1/devices',
      { schema: { operationId: 'listDevices', summary: 'List devices, filtered and paged', tags: ['devices'], querystring: ListQuery, response: { 200: Type.Object({ items: Type.Array(DeviceView), total: Type.Integer() }), ...errorResponses } } },
      async (req) => {
        const q = req.query;
        const filter: DeviceFilter = {
          ...(q.site !== undefined ? { site: q.site } : {}),
          ...(q.building !== undefined ? { building: q.building } : {}),
          ...(q.room !== undefined ? { room: q.room } : {}),
          ...(q.type !== undefined ? { type: q.type } : {}),
          ...(q.state !== undefined ? { state: q.state } : {}),
          ...(q.tag !== undefined ? { tag: q.tag } : {}),
          ...(q.search !== undefined && q.search !== '' ? { search: q.search } : {}),
          ...(q.enabled !== undefined ? { enabled: q.enabled } : {}),
        };
        const [items, total] = await Promise.all([deps.store.list({ ...filter, limit: q.limit, offset: q.offset }), deps.store.count(filter)]);
        return { items: items.map(view), total };
      },
    );

    app.get<{ Params: Static<typeof IdParams> }>(
      '/api/v1/devices/:id',
      {
        schema: {
          operationId: 'getDevice',
          summary: 'One device, with its recent audit entries and orders',
          tags: ['devices'],
          params: IdParams,
          response: { 200: Type.Intersect([DeviceView, Type.Object({ audit: Type.Array(AuditView), commands: Type.Array(CommandView) })]), ...errorResponses },
        },
      },
      async (req) => {
        const d = await find(req.params.id);
        const [audit, commands] = await Promise.all([deps.store.listAudit({ device: d.id, limit: 20 }), deps.store.listCommands({ device: d.id, limit: 10 })]);
        return { ...view(d), audit, commands };
      },
    );

    app.post<{ Body: Static<typeof CreateBody> }>(
      '/api/v1/devices',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'createDevice',
          summary: 'Register a device, with a password now or one left for its bootstrap call',
          tags: ['devices'],
          body: CreateBody,
          response: { 201: Issued, ...errorResponses },
        },
      },
      async (req, reply) => {
        const { bootstrap, claimCode, ...input } = req.body;
        if (claimCode !== undefined) checkClaimCode(claimCode, 'body.claimCode');
        const issued = await addDevice(deps.store, input, { bootstrap: bootstrap ?? false, actor: actorOf(req) }).catch(inBody);
        const device = claimCode !== undefined ? await setClaimCode(deps.store, issued.device, claimCode, { actor: actorOf(req) }) : issued.device;
        if (issued.password !== undefined) await deps.passwordIssued?.(device, issued.password);
        reply.code(201).header('cache-control', 'no-store');
        return { device: view(device), username: issued.username, ...(issued.password !== undefined ? { password: issued.password } : {}) };
      },
    );

    app.patch<{ Params: Static<typeof IdParams>; Body: Static<typeof PatchBody> }>(
      '/api/v1/devices/:id',
      {
        config: { role: 'operator' },
        schema: { operationId: 'updateDevice', summary: 'Change a device\'s attributes', tags: ['devices'], params: IdParams, body: PatchBody, response: { 200: DeviceView, ...errorResponses } },
      },
      async (req) => {
        const d = await find(req.params.id);
        const patch: DevicePatch = req.body;
        const r = await deps.store.update(d.id, patch).catch(inBody);
        if (r.change !== 'unchanged') {
          await deps.store.appendAudit({ actor: actorOf(req), action: 'device.set', device: d.id, detail: { changed: [...r.changed] }, result: 'ok' });
        }
        return view(r.device);
      },
    );

    for (const on of [true, false]) {
      app.post<{ Params: Static<typeof IdParams> }>(
        `/api/v1/devices/:id/${on ? 'enable' : 'disable'}`,
        {
          config: { role: 'operator' },
          schema: {
            operationId: on ? 'enableDevice' : 'disableDevice',
            summary: on ? 'Enable a device: its readings and login are accepted again' : 'Disable a device: its readings are dropped and its login refused',
            tags: ['devices'],
            params: IdParams,
            response: { 200: DeviceView, ...errorResponses },
          },
        },
        async (req) => {
          const d = await find(req.params.id);
          const after = await deps.store.setEnabled(d.id, on);
          await deps.store.appendAudit({ actor: actorOf(req), action: on ? 'device.enable' : 'device.disable', device: d.id, result: 'ok' });
          return view(after);
        },
      );
    }

    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof BlockBody> | undefined }>(
      '/api/v1/devices/:id/block',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'blockDevice',
          summary: 'Block a device: BLOCKED, its readings dropped and its login refused, with a reason; a blocked alarm is raised',
          tags: ['devices'],
          params: IdParams,
          body: Type.Optional(BlockBody),
          response: { 200: DeviceView, ...errorResponses },
        },
      },
      async (req) => {
        const d = await find(req.params.id);
        const reason = req.body?.reason?.trim() || `blocked by ${actorOf(req)}`;
        const after = await deps.store.setState(d.id, 'BLOCKED', reason);
        await deps.store.appendAudit({ actor: actorOf(req), action: 'device.block', device: d.id, detail: { reason }, result: 'ok' });
        await deps.devicesChanged?.();
        return view(after);
      },
    );

    app.post<{ Params: Static<typeof IdParams> }>(
      '/api/v1/devices/:id/unblock',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'unblockDevice',
          summary: 'Unblock a BLOCKED device: back to INIT (its next self-description decides again); its blocked alarm clears',
          tags: ['devices'],
          params: IdParams,
          response: { 200: DeviceView, ...errorResponses },
        },
      },
      async (req) => {
        const d = await find(req.params.id);
        if (d.state !== 'BLOCKED') throw new BackhaulError('BH_DEVICE_STATE', `device ${d.id} is ${d.state}, not BLOCKED`, { path: 'id' });
        const after = await deps.store.setState(d.id, 'INIT');
        await deps.store.appendAudit({ actor: actorOf(req), action: 'device.unblock', device: d.id, detail: { was: d.blockedReason ?? 'blocked' }, result: 'ok' });
        await deps.devicesChanged?.();
        return view(after);
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof ResetBody> | undefined }>(
      '/api/v1/devices/:id/reset-credentials',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'resetDeviceCredentials',
          summary: 'A new password for a device (or one left for its bootstrap call); the old one stops working',
          tags: ['devices'],
          params: IdParams,
          body: ResetBody,
          response: { 200: Type.Object({ username: Type.String(), password: Type.Optional(Type.String()) }), ...errorResponses } },
      },
      async (req, reply) => {
        const d = await find(req.params.id);
        const r = await resetDeviceCredentials(deps.store, d, { bootstrap: req.body?.bootstrap ?? false, actor: actorOf(req) });
        if (r.password !== undefined) await deps.passwordIssued?.(r.device, r.password);
        else await deps.devicesChanged?.(); // its old password stops working at the external broker too
        reply.header('cache-control', 'no-store');
        return { username: r.username, ...(r.password !== undefined ? { password: r.password } : {}) };
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof ClaimBody> | undefined }>(
      '/api/v1/devices/:id/claim',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'openClaimWindow',
          summary: 'Open a device\'s claim window: until it closes, its bootstrap call may fetch its first password',
          tags: ['devices'],
          params: IdParams,
          body: ClaimBody,
          response: { 200: ClaimAnswer, ...errorResponses },
        },
      },
      async (req) => {
        const d = await find(req.params.id);
        const forMs = claimWindowMs(req.body?.for, 'body.for');
        return openClaimWindows(deps.store, [d], { forMs, actor: actorOf(req), now: deps.clock.now() });
      },
    );

    app.delete<{ Params: Static<typeof IdParams> }>(
      '/api/v1/devices/:id/claim',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'closeClaimWindow',
          summary: 'Close a device\'s claim window early',
          tags: ['devices'],
          params: IdParams,
          response: { 200: Type.Object({ devices: Type.Array(Type.String()) }), ...errorResponses },
        },
      },
      async (req) => {
        const d = await find(req.params.id);
        return { devices: [...(await closeClaimWindows(deps.store, [d], { actor: actorOf(req) }))] };
      },
    );

    app.post<{ Body: Static<typeof ClaimAllBody> }>(
      '/api/v1/claim-windows',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'openClaimWindows',
          summary: 'Open the claim window of every device still waiting for its first password',
          tags: ['devices'],
          body: ClaimAllBody,
          response: { 200: ClaimAnswer, ...errorResponses },
        },
      },
      async (req) => openClaimWindows(deps.store, 'unclaimed', { forMs: claimWindowMs(req.body.for, 'body.for'), actor: actorOf(req), now: deps.clock.now() }),
    );

    app.delete(
      '/api/v1/claim-windows',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'closeClaimWindows',
          summary: 'Close every open claim window',
          tags: ['devices'],
          response: { 200: Type.Object({ devices: Type.Array(Type.String()) }), ...errorResponses },
        },
      },
      async (req) => ({ devices: [...(await closeClaimWindows(deps.store, 'all', { actor: actorOf(req) }))] }),
    );

    app.put<{ Params: Static<typeof IdParams>; Body: Static<typeof ClaimCodeBody> }>(
      '/api/v1/devices/:id/claim-code',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'setClaimCode',
          summary: 'Set the claim code printed on a device\'s label (empty removes it); only its hash is kept',
          tags: ['devices'],
          params: IdParams,
          body: ClaimCodeBody,
          response: { 200: DeviceView, ...errorResponses },
        },
      },
      async (req) => {
        const d = await find(req.params.id);
        if (req.body.code.trim() !== '') checkClaimCode(req.body.code, 'body.code');
        return view(await setClaimCode(deps.store, d, req.body.code, { actor: actorOf(req) }));
      },
    );

    app.get(
      '/api/v1/device-types',
      {
        schema: {
          operationId: 'listDeviceTypes',
          summary: 'The device types, their default thresholds and config schemas',
          tags: ['devices'],
          response: {
            200: Type.Array(
              Type.Object({
                name: Type.String(),
                topicName: Type.String(),
                description: Type.String(),
                defaults: Type.Object({ maxSilentMs: Type.Optional(Type.Number()), batteryFloor: Type.Optional(Type.Number()) }),
                config: Type.Unknown(),
              }),
            ),
          },
        },
      },
      () => deps.types.list().map((t) => ({ name: t.name, topicName: t.topicName, description: t.description, defaults: t.defaults, config: t.config })),
    );

    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof CommandBody> }>(
      '/api/v1/devices/:id/commands',
      {
        config: { role: 'operator' },
        schema: {
          operationId: 'sendCommand',
          summary: 'Send an order to a device: on its command topic of the embedded broker, or as a LoRaWAN downlink through its network server',
          tags: ['commands'],
          params: IdParams,
          body: CommandBody,
          response: { 201: CommandView, ...errorResponses },
        },
      },
      async (req, reply) => {
        const d = await find(req.params.id);
        const record = await deps
          .sendCommand({ device: d.id, order: req.body.order, params: req.body.params ?? {}, actor: actorOf(req), ...(req.body.force === true ? { force: true } : {}), ...(req.body.downlink ? { downlink: req.body.downlink } : {}) })
          .catch((e: unknown) => {
            if (isBackhaulError(e) && (e.path === 'order' || e.path === 'params' || e.path?.startsWith('params.') === true)) inBody(e);
            throw e;
          });
        reply.code(201);
        return record;
      },
    );

    app.get<{ Querystring: Static<typeof CommandQuery> }>(
      '/api/v1/commands',
      { schema: { operationId: 'listCommands', summary: 'Recent orders and what became of them', tags: ['commands'], querystring: CommandQuery, response: { 200: Type.Array(CommandView), ...errorResponses } } },
      async (req) => {
        const device = req.query.device !== undefined ? (await findDevice(deps.store, req.query.device, undefined, 'querystring.device')).id : undefined;
        return deps.store.listCommands({
          ...(device !== undefined ? { device } : {}),
          ...(req.query.status !== undefined ? { status: req.query.status } : {}),
          limit: req.query.limit,
        });
      },
    );

    app.get<{ Params: { id: string } }>(
      '/api/v1/commands/:id',
      {
        schema: {
          operationId: 'getCommand',
          summary: 'One order',
          tags: ['commands'],
          params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
          response: { 200: CommandView, ...errorResponses },
        },
      },
      async (req) => {
        const c = await deps.store.getCommand(req.params.id);
        if (!c) throw new ApiError('BH_API_NOT_FOUND', `no order ${JSON.stringify(req.params.id)}`, { path: 'params.id' });
        return c;
      },
    );
  };
}
