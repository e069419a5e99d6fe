// /api/v1/alarms (docs/api.md): the alarms the keeper holds (src/devices/alarms.ts), their counts for every
// dashboard page's header, and an operator's acknowledge and clear.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ALARM_KINDS, ALARM_STATES, type Alarm } from '../../devices/alarm-types.js';
import { ApiError, errorResponses } from '../server.js';
import { actorOf } from './audit.js';
import type { ApiDeps } from './deps.js';

const Kind = Type.Union(ALARM_KINDS.map((k) => Type.Literal(k)));

const AlarmView = Type.Object({
  id: Type.String(),
  kind: Kind,
  subjectKind: Type.Union([Type.Literal('device'), Type.Literal('sink')]),
  subject: Type.String(),
  aspect: Type.String(),
  severity: Type.Union([Type.Literal('warning'), Type.Literal('critical')]),
  state: Type.Union(ALARM_STATES.map((s) => Type.Literal(s))),
  message: Type.String(),
  raisedAt: Type.Number(),
  lastSeenAt: Type.Number(),
  acknowledgedAt: Type.Optional(Type.Number()),
  acknowledgedBy: Type.Optional(Type.String()),
  note: Type.Optional(Type.String()),
  clearedAt: Type.Optional(Type.Number()),
  clearedBy: Type.Optional(Type.String()),
  reminders: Type.Integer(),
});

const ListQuery = Type.Object(
  {
    state: Type.Optional(Type.Union([Type.Literal('open'), ...ALARM_STATES.map((s) => Type.Literal(s))], { description: '`open`: raised or acknowledged' })),
    kind: Type.Optional(Kind),
    subjectKind: Type.Optional(Type.Union([Type.Literal('device'), Type.Literal('sink')])),
    subject: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  },
  { additionalProperties: false },
);

const Counts = Type.Object({
  raised: Type.Integer(),
  acknowledged: Type.Integer(),
  byKind: Type.Record(Type.String(), Type.Object({ raised: Type.Integer(), acknowledged: Type.Integer() })),
});

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, description: 'The alarm\'s id (`al_…`).' }) });
const NoteBody = Type.Union([Type.Object({ note: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false }), Type.Null()]);

const view = (a: Alarm): Static<typeof AlarmView> => a;

export function alarmRoutes(deps: ApiDeps): (app: FastifyInstance) => void {
  return (app) => {
    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/api/v1/alarms',
      { schema: { operationId: 'listAlarms', summary: 'Alarms, newest first', tags: ['alarms'], querystring: ListQuery, response: { 200: Type.Object({ items: Type.Array(AlarmView) }), ...errorResponses } } },
      async (req) => {
        const q = req.query;
        const items = await deps.alarms.list({
          ...(q.state !== undefined ? { state: q.state } : {}),
          ...(q.kind !== undefined ? { kind: q.kind } : {}),
          ...(q.subjectKind !== undefined ? { subjectKind: q.subjectKind } : {}),
          ...(q.subject !== undefined ? { subject: q.subject } : {}),
          limit: q.limit,
        });
        return { items: items.map(view) };
      },
    );

    app.get('/api/v1/alarms/counts', { schema: { operationId: 'countAlarms', summary: 'Open alarms: raised and acknowledged, in all and by kind', tags: ['alarms'], response: { 200: Counts, ...errorResponses } } }, () =>
      deps.alarms.counts(),
    );

    app.get<{ Params: Static<typeof IdParams> }>(
      '/api/v1/alarms/:id',
      { schema: { operationId: 'getAlarm', summary: 'One alarm', tags: ['alarms'], params: IdParams, response: { 200: AlarmView, ...errorResponses } } },
      async (req) => {
        const a = await deps.alarms.get(req.params.id);
        if (!a) throw new ApiError('BH_ALARM_NOT_FOUND', `no alarm ${req.params.id}`);
        return view(a);
      },
    );

    for (const action of ['ack', 'clear'] as const) {
      app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof NoteBody> }>(
        `/api/v1/alarms/:id/${action}`,
        {
          config: { role: 'operator' },
          schema: {
            operationId: action === 'ack' ? 'acknowledgeAlarm' : 'clearAlarm',
            summary: action === 'ack' ? 'Acknowledge an open alarm, with a note: no more reminders; it clears when its condition ends' : 'Clear an open alarm by hand',
            tags: ['alarms'],
            params: IdParams,
            body: NoteBody,
            response: { 200: AlarmView, ...errorResponses },
          },
        },
        async (req) => {
          const note = req.body?.note;
          const a = action === 'ack' ? await deps.alarms.acknowledge(req.params.id, actorOf(req), note) : await deps.alarms.clear(req.params.id, actorOf(req), note);
          return view(a);
        },
      );
    }
  };
}
