// A plain aedes MQTT broker in its own process, for the end-to-end benchmark (bench/e2e.ts): the output broker
// Backhaul's and Node-RED's mqtt sinks publish to, Node-RED's input broker, and the "bare aedes" competitor. No
// authentication, in-memory persistence (so a subscriber with a persistent session gets the QoS 1 messages published
// while it was away), aedes's defaults otherwise — the same aedes version Backhaul embeds.
//
//   node dist/bench/e2e-broker.js --port N     (forked by the benchmark; IPC: {t:'down'} / {t:'up'})
//
// `down` closes the listener and every connection (a broker outage: clients see the connection drop and are refused
// until `up`); the sessions of persistent clients survive it, as they would survive a network cut.
import { createServer, type Server, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';
import { dieWithParent, type BrokerReply, type BrokerRequest } from './e2e-lib.js';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const port = Number(values.port);

function reply(r: BrokerReply): void {
  process.send?.(r);
}

dieWithParent();
const broker = await Aedes.createBroker();
const sockets = new Set<Socket>();
let server: Server | undefined;

function listen(): Promise<void> {
  const s = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  return new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port }, () => {
      s.off('error', reject);
      server = s;
      resolve();
    });
  });
}

process.on('message', (m: BrokerRequest) => {
  if (m.t === 'down') {
    const s = server;
    server = undefined;
    s?.close();
    for (const socket of sockets) socket.destroy();
    reply({ t: 'down' });
  } else if (m.t === 'up') {
    listen().then(
      () => reply({ t: 'up' }),
      (e: unknown) => reply({ t: 'error', message: `cannot listen on ${port} again: ${String(e)}` }),
    );
  }
});

try {
  await listen();
  reply({ t: 'ready', port });
} catch (e) {
  reply({ t: 'error', message: `cannot listen on 127.0.0.1:${port}: ${String(e)}` });
  process.exit(1);
}
