// Lighter per-connection memory in aedes's parser (10,000 idle devices are 10,000 parsers): a plain byte list instead
// of a stream, and the CONNECT packet dropped once the login is accepted.
import type { Client } from 'aedes';

/** The parts of aedes's per-client mqtt-packet parser that slimParser and dropConnectPacket touch. */
interface ClientParser {
  _list?: unknown;
  settings?: unknown;
}

function parserOf(client: Client): ClientParser | undefined {
  const p = (client as unknown as { _parser?: unknown })._parser;
  return typeof p === 'object' && p !== null ? p : undefined;
}

interface ByteList {
  readonly length: number;
  append(buf: Uint8Array): unknown;
  consume(n: number): unknown;
  slice(start?: number, end?: number): Uint8Array;
  readUInt8(offset: number): number;
}

/**
 * aedes gives every client an mqtt-packet parser whose byte list is a `bl` BufferListStream: a whole Duplex stream
 * (two stream states, an event emitter: ~1 KB a connection, for its life) on which the parser only ever calls
 * BufferList methods (append, consume, slice, readUInt8/16/32, toString, length). bl's BufferListStream is those very
 * methods copied onto a stream, so its plain BufferList (exported beside it) parses the same. Swapped before the
 * socket is read, when the list is empty; anything else (another aedes or mqtt-packet) is left as it is.
 */
export function slimParser(client: Client): void {
  const parser = parserOf(client);
  const list = parser?._list as (Partial<ByteList> & { pipe?: unknown; constructor?: unknown }) | undefined;
  if (!parser || !list || list.length !== 0 || typeof list.pipe !== 'function') return;
  const Plain = (list.constructor as { BufferList?: unknown } | undefined)?.BufferList;
  if (typeof Plain !== 'function') return;
  const replacement = new (Plain as new () => Partial<ByteList>)();
  const methods = ['append', 'consume', 'slice', 'readUInt8', 'readUInt16BE', 'readUInt32BE', 'toString'] as const;
  if (replacement.length !== 0 || !methods.every((m) => typeof (replacement as Record<string, unknown>)[m] === 'function')) return;
  parser._list = replacement;
}

/** What the parser needs of the CONNECT once the login is accepted: its protocol level (one object for all). */
const PARSER_SETTINGS: Readonly<Record<number, object>> = { 3: Object.freeze({ protocolVersion: 3 }), 4: Object.freeze({ protocolVersion: 4 }) };

/**
 * mqtt-packet keeps the CONNECT packet (client id, username, the password's buffer) as its parser's settings for
 * the connection's life, only to read its protocol level from it: after CONNACK 0 it gets a shared object with just
 * that level.
 */
export function dropConnectPacket(client: Client): void {
  const parser = parserOf(client);
  const level = (parser?.settings as { protocolVersion?: unknown } | undefined)?.protocolVersion;
  const settings = typeof level === 'number' ? PARSER_SETTINGS[level] : undefined;
  if (parser && settings) parser.settings = settings;
}
