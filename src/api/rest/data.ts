// /api/v1/readings, /devices/:id/latest, /events and the live event stream (docs/api.md). Readings and stored events
// come from the historian (a sink that keeps history: `openHistory` in its definition); the stream comes straight from the hub as events are raised.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { HubEvent } from '../../core/types.js';
import { findDevice } from '../../devices/store/rules.js';
import type { HistoryReader } from '../../core/history.js';
import { ApiError, errorResponses } from '../server.js';
import { EventView, type ApiDeps } from './deps.js';

const KEEPALIVE_MS = 15_000;
/** Events waiting for one slow SSE client before it is cut off (it reconnects and reads history instead). */
const MAX_PENDING = 1000;

const ReadingsQuery = Type.Object(
  {
    device: Type.String({ minLength: 1 }),
    measurement: Type.Optional(Type.String({ minLength: 1 })),
    from: Type.Optional(Type.Integer({ description: 'ms since the epoch, inclusive' })),
    to: Type.Optional(Type.Integer({ description: 'ms since the epoch, exclusive' })),
    step: Type.Optional(Type.Integer({ minimum: 1, description: 'Downsample: one point per step (ms).' })),
    agg: Type.Optional(Type.Union([Type.Literal('avg'), Type.Literal('min'), Type.Literal('max'), Type.Literal('last')])),
    limit: Type.Integer({ minimum: 1, maximum: 100_000, default: 10_000 }),
  },
  { additionalProperties: false },
);

const Point = Type.Object({
  measurement: Type.String(),
  ts: Type.Number(),
  value: Type.Union([Type.Number(), Type.String(), Type.Boolean()]),
  unit: Type.Optional(Type.String()),
  authenticated: Type.Boolean({
    description: 'The value came over the device\'s own login (not a gateway, an anonymous or external sender); for a downsampled point, all its values did.',
  }),
});

/** Ids per `GET /latest`: a device list page's worth, and a URL well under Node's 16 KiB header limit. */
export const MAX_LATEST_DEVICES = 500;

const LatestQuery = Type.Object(
  {
    devices: Type.String({ minLength: 1, maxLength: 16_000, description: `Device ids, comma-separated, at most ${MAX_LATEST_DEVICES}, as the device list names them.` }),
  },
  { additionalProperties: false },
);

const EventsQuery = Type.Object(
  {
    device: Type.Optional(Type.String()),
    type: Type.Optional(Type.String()),
    severity: Type.Optional(Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')])),
    from: Type.Optional(Type.Integer()),
    to: Type.Optional(Type.Integer()),
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
  },
  { additionalProperties: false },
);

export function dataRoutes(deps: ApiDeps): (app: FastifyInstance) => void {
  const historian = (): HistoryReader => {
    const h = deps.historian();
    if (!h) throw new ApiError('BH_API_NO_HISTORIAN', 'no historian: no sink in the config keeps history (or `api.historian` names none), or it has not written anything yet');
    return h;
  };

  return (app) => {
    app.get<{ Params: { id: string } }>(
      '/api/v1/devices/:id/latest',
      {
        schema: {
          operationId: 'getLatest',
          summary: 'A device\'s latest value of each measurement',
          tags: ['readings'],
          params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }),
          response: { 200: Type.Object({ values: Type.Array(Point) }), ...errorResponses },
        },
      },
      async (req) => {
        const d = await findDevice(deps.store, req.params.id, undefined, 'params.id');
        const values = (await historian().latest(d.id)).map((r) => ({ measurement: r.measurement, ts: r.ts, value: r.value, ...(r.unit !== undefined ? { unit: r.unit } : {}), authenticated: r.authenticated }));
        return { values };
      },
    );

    // The device list's latest values: one call for a page of devices instead of one per device. Ids are taken as
    // written (the list's canonical ids); an id with nothing stored has an empty list.
    app.get<{ Querystring: Static<typeof LatestQuery> }>(
      '/api/v1/latest',
      {
        schema: {
          operationId: 'getLatestMany',
          summary: 'The latest value of each measurement of several devices',
          tags: ['readings'],
          querystring: LatestQuery,
          response: { 200: Type.Object({ devices: Type.Record(Type.String(), Type.Array(Point)) }), ...errorResponses },
        },
      },
      async (req) => {
        const ids = [...new Set(req.query.devices.split(',').map((s) => s.trim()).filter((s) => s !== ''))];
        if (ids.length === 0) throw new ApiError('BH_API_REQUEST', 'name at least one device', { path: 'querystring.devices' });
        if (ids.length > MAX_LATEST_DEVICES) throw new ApiError('BH_API_REQUEST', `at most ${MAX_LATEST_DEVICES} devices per call (${ids.length} given)`, { path: 'querystring.devices' });
        const devices: Record<string, Array<Static<typeof Point>>> = {};
        for (const id of ids) devices[id] = [];
        for (const r of await historian().latestMany(ids)) {
          devices[r.device]?.push({ measurement: r.measurement, ts: r.ts, value: r.value, ...(r.unit !== undefined ? { unit: r.unit } : {}), authenticated: r.authenticated });
        }
        return { devices };
      },
    );

    app.get<{ Querystring: Static<typeof ReadingsQuery> }>(
      '/api/v1/readings',
      { schema: { operationId: 'listReadings', summary: 'A device\'s readings over time, optionally downsampled', tags: ['readings'], querystring: ReadingsQuery, response: { 200: Type.Object({ items: Type.Array(Point) }), ...errorResponses } } },
      async (req) => {
        const q = req.query;
        const d = await findDevice(deps.store, q.device, undefined, 'querystring.device');
        const filter = {
          device: d.id,
          ...(q.measurement !== undefined ? { measurement: q.measurement } : {}),
          ...(q.from !== undefined ? { from: q.from } : {}),
          ...(q.to !== undefined ? { to: q.to } : {}),
        };
        const h = historian();
        if (q.step !== undefined) {
          return { items: await h.downsample({ ...filter, step: q.step, ...(q.agg !== undefined ? { agg: q.agg } : {}), limit: q.limit }) };
        }
        const items = (await h.queryReadings({ ...filter, limit: q.limit })).map((r) => ({ measurement: r.measurement, ts: r.ts, value: r.value, ...(r.unit !== undefined ? { unit: r.unit } : {}), authenticated: r.authenticated }));
        return { items };
      },
    );

    app.get<{ Querystring: Static<typeof EventsQuery> }>(
      '/api/v1/events',
      { schema: { operationId: 'listEvents', summary: 'Stored events, newest first', tags: ['events'], querystring: EventsQuery, response: { 200: Type.Array(EventView), ...errorResponses } } },
      async (req) => {
        const q = req.query;
        return await historian().queryEvents({
          ...(q.device !== undefined ? { device: q.device } : {}),
          ...(q.type !== undefined ? { type: q.type } : {}),
          ...(q.severity !== undefined ? { severity: q.severity } : {}),
          ...(q.from !== undefined ? { from: q.from } : {}),
          ...(q.to !== undefined ? { to: q.to } : {}),
          limit: q.limit,
          order: 'desc',
        });
      },
    );

    // Server-sent events: each hub event as `event: hub-event`. A client that stops reading is cut off once
    // MAX_PENDING events wait for it, so it cannot grow the server's memory.
    app.get('/api/v1/events/stream', {
        schema: {
          operationId: 'streamEvents',
          summary: 'Every hub event as it is raised (server-sent events)',
          tags: ['events'],
          response: { 200: { description: 'text/event-stream: `event: hub-event` with the event as JSON', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errorResponses },
        },
      }, (req, reply) => {
      const res = reply.raw;
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': backhaul events\n\n');
      let pending = 0;
      const send = (text: string) => {
        if (res.writableNeedDrain) {
          pending++;
          if (pending > MAX_PENDING) {
            req.log.warn('event stream client too slow; closing it');
            close();
            return;
          }
        }
        res.write(text);
      };
      res.on('drain', () => (pending = 0));
      const unsubscribe = deps.onEvent((e: HubEvent) => {
        const { kind: _kind, ...event } = e;
        send(`event: hub-event\ndata: ${JSON.stringify(event)}\n\n`);
      });
      const keepAlive = setInterval(() => send(': keep-alive\n\n'), KEEPALIVE_MS);
      keepAlive.unref();
      const close = () => {
        clearInterval(keepAlive);
        unsubscribe();
        if (!res.writableEnded) res.end();
      };
      req.raw.on('close', close);
    });
  };
}
