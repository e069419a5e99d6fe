// The publish path: every PUBLISH whose topic matches `topics` and none of `exclude` becomes a frame, handed to the
// hub inside aedes's `authorizePublish` hook, which runs before aedes writes the PUBACK of a QoS 1 publish or the
// PUBREC of a QoS 2 one (lib/handlers/publish.js: authorizePublish, then enqueuePublish acknowledges). So a device's
// publish is acknowledged only once its readings are durably queued. After the hook the message is delivered to the
// broker's own subscribers. QoS 2 is ingested once per packet id until PUBREL (sessions.ts: QoS2Receipts).
//
// This runs for every message: everything it needs is made once per input (publishHook), nothing per message but the
// frame itself.
import type { Socket } from 'node:net';
import type { AedesOptions, Client, PublishPacket } from 'aedes';
import { BackhaulError } from '../../core/errors.js';
import type { Frame, TransportIdentity } from '../../core/types.js';
import { anyTopicMatches } from '../../core/topic.js';
import { bytes } from '../util.js';
import { publishRefusal } from './authorize.js';
import { addressOf, QOS2_INFLIGHT, type BrokerState } from './state.js';

/** aedes's `authorizePublish`: the ACL (authorize.ts), then the hand-over to the data path before the acknowledgement. */
export function publishHook(s: BrokerState, topics: readonly string[], exclude: readonly string[]): NonNullable<AedesOptions['authorizePublish']> {
  const ctx = s.ctx;
  const closings = new WeakMap<Socket, Promise<void>>();
  /** Resolves when `socket` closes (one promise per socket, made only for a session with QoS 2 publishes). */
  const closedOf = (socket: Socket): Promise<void> => {
    let p = closings.get(socket);
    if (!p) {
      p = socket.destroyed ? Promise.resolve() : new Promise<void>((r) => socket.once('close', () => r()));
      closings.set(socket, p);
    }
    return p;
  };

  // A commit acknowledges many publishes at once; their PUBACKs to one device leave in one write, not one each.
  const corked = new WeakSet<Socket>();
  const corkUntilNextTurn = (client: Client | null): void => {
    const sock = client?.conn as Partial<Socket> | undefined;
    if (!sock || typeof sock.cork !== 'function' || corked.has(sock as Socket)) return;
    corked.add(sock as Socket);
    sock.cork();
    setImmediate(() => {
      corked.delete(sock as Socket);
      sock.uncork?.();
    });
  };

  // Made at a connection's first publish and kept while it lives: its login, id and address do not change, and
  // asking the socket for its peer address is a system call (it showed in the profile of every publish).
  const identities = new WeakMap<Client, TransportIdentity>();
  const identityOf = (client: Client | null): TransportIdentity | undefined => {
    if (!client) return undefined;
    const known = identities.get(client);
    if (known) return known;
    const username = s.principals.get(client)?.username;
    const remoteAddress = addressOf(client);
    const identity: TransportIdentity = {
      ...(username !== undefined ? { username } : {}),
      ...(client.id ? { clientId: client.id } : {}),
      ...(remoteAddress !== undefined ? { remoteAddress } : {}),
    };
    identities.set(client, identity);
    return identity;
  };

  const ingest = async (client: Client | null, topic: string, payload: Buffer | string, qos: number): Promise<void> => {
    if (qos === 0) ctx.metrics.framesUnacknowledged.inc({ input: ctx.id });
    const identity = identityOf(client);
    const frame: Frame = {
      input: ctx.id,
      payload: typeof payload === 'string' ? new TextEncoder().encode(payload) : bytes(payload),
      receivedAt: ctx.clock.now(),
      topic,
      ...(identity ? { identity } : {}),
    };
    try {
      await s.inflight.track(ctx.emit(frame));
    } catch (err) {
      s.countError('emit', 'could not hand a publish to the data path; QoS 1 and 2 publishes are not acknowledged', err);
      if (qos > 0) {
        const e = err instanceof Error ? err : new Error(String(err));
        s.counted.add(e);
        throw e; // aedes drops the client without a PUBACK/PUBREC; the device republishes after reconnecting
      }
    }
  };

  /**
   * A QoS 2 publish is ingested once per packet id until aedes completes its handshake (PUBREL): a copy resent
   * (DUP) before then waits for the first one's hand-over and for aedes to have stored it, so aedes finds it in
   * its QoS 2 store and answers PUBREC without publishing it again.
   */
  const ingestOnce = (client: Client, topic: string, packet: PublishPacket): Promise<void> => {
    const messageId = packet.messageId!;
    const earlier = s.receipts.lookup(client.id, messageId);
    if (earlier === 'full') {
      const e = new BackhaulError('BH_MQTT_INFLIGHT', `client ${client.id} has ${QOS2_INFLIGHT} QoS 2 publishes awaiting PUBREL; connection closed`);
      s.refuse('qos2_inflight', e, { clientId: client.id, remoteAddress: addressOf(client) });
      s.counted.add(e);
      return Promise.reject(e);
    }
    if (earlier !== 'new') return earlier;
    const handover = ingest(client, topic, packet.payload, 2);
    s.receipts.record(client.id, messageId, handover, closedOf(client.conn as Socket));
    return handover;
  };

  return (client, packet, callback) => {
    const topic = packet.topic;
    const refused = publishRefusal(s, client, topic);
    if (refused) {
      callback(refused);
      return;
    }
    if (!anyTopicMatches(topics, topic) || anyTopicMatches(exclude, topic)) {
      callback(null);
      return;
    }
    if (!s.accepting) {
      // Stopping: a QoS 1 or 2 publish must not be acknowledged when it will not be ingested; the device resends.
      callback(packet.qos > 0 ? new Error('Backhaul is stopping') : null);
      return;
    }
    // A will has no packet id and is published once; only a client's own QoS 2 PUBLISH can come again.
    const wire = client !== null && packet.qos === 2 && typeof packet.messageId === 'number';
    const handedOver = wire ? ingestOnce(client, topic, packet) : ingest(client, topic, packet.payload, packet.qos);
    handedOver.then(
      () => {
        corkUntilNextTurn(client);
        callback(null);
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  };
}
