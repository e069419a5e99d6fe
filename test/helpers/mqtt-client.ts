// Small helpers for tests that talk to a broker through mqtt.js.
import type { MqttClient } from 'mqtt';

/** Publish QoS 1 and report whether the broker acknowledged it (true) or closed the connection (false). */
export function tryPublish(c: MqttClient, topic: string, body: string): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = () => resolve(false);
    c.once('close', onClose);
    c.publish(topic, body, { qos: 1 }, (err) => {
      c.off('close', onClose);
      resolve(!err);
    });
  });
}
