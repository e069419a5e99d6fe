// Built-in sinks. A new sink: a folder under sinks/ with index.ts (definition + schema) and README.md, and a line here.
import type { SinkDefinition } from '../core/driver.js';
import { consoleSink } from './console/index.js';
import { emoncmsSink } from './emoncms/index.js';
import { fileSink } from './file/index.js';
import { httpSink } from './http/index.js';
import { mqttSink } from './mqtt/index.js';
import { natsSink } from './nats/index.js';
import { ntfySink } from './ntfy/index.js';
import { postgresSink } from './postgres/index.js';
import { smtpSink } from './smtp/index.js';
import { sqliteSink } from './sqlite/index.js';
import { webhookSink } from './webhook/index.js';

export const builtinSinks: readonly SinkDefinition[] = [
  mqttSink,
  natsSink,
  httpSink,
  emoncmsSink,
  sqliteSink,
  postgresSink,
  fileSink,
  consoleSink,
  ntfySink,
  smtpSink,
  webhookSink,
] as readonly SinkDefinition[];
