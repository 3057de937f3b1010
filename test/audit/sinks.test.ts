import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import { after, describe, it } from 'node:test';
import {
  bruteForceDetector,
  createAuditLog,
  formatSyslogMessage,
  type SinkEntry,
  syslogSink,
  verifyWebhookSignature,
  webhookSink,
} from '../../src/audit/index.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { decision, T0, withStore } from './helpers.ts';

const SECRET = 'whsec-test-0123456789';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

async function receiver(answer: (index: number) => number) {
  const received: Received[] = [];
  const server = createHttpServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
    response.statusCode = answer(received.length - 1);
    response.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

const entry = (seq: number, overrides = {}): SinkEntry => ({
  record: { ...decision({ time: T0 + seq, ...overrides }), seq, id: `id-${seq}` },
  hash: 'a'.repeat(64),
});

/** RFC 5424 header and structured data, parsed strictly. */
const RFC5424 =
  /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (\S+) (\S+) (\S+) (\S+) \[vigil@32473 seq="(\d+)" id="([^"]*)" hash="([0-9a-f]{64})"\] \u{feff}(.*)$/su;

describe('webhook sink', () => {
  it('alerts reach the webhook with a valid HMAC signature and timestamp', async () => {
    const hook = await receiver(() => 204);
    const clock = new ManualClock(T0);
    await withStore(freshSqliteUrl(), async (store) => {
      const log = createAuditLog(store, {
        clock,
        flushIntervalMs: 60_000,
        detectors: [bruteForceDetector()],
        sinks: [webhookSink({ url: hook.url, secret: SECRET, kinds: ['alert'], clock })],
      });
      for (let index = 0; index < 7; index++) {
        log.enqueue(
          decision({ time: T0 + index, decision: 'deny', sourceIp: '203.0.113.50', requestId: `x-${index}` }),
        );
      }
      await log.close();
    });
    assert.equal(hook.received.length, 1, 'one post: the second alert is deduplicated');
    const [post] = hook.received;
    assert.ok(post);
    const timestamp = post.headers['x-vigil-timestamp'] as string;
    const signature = post.headers['x-vigil-signature'] as string;
    assert.equal(timestamp, String(T0 / 1000));
    assert.match(signature, /^sha256=[0-9a-f]{64}$/);
    assert.equal(verifyWebhookSignature(SECRET, { timestamp, signature }, post.body, T0), true);
    assert.equal(verifyWebhookSignature('other-secret', { timestamp, signature }, post.body, T0), false);
    assert.equal(verifyWebhookSignature(SECRET, { timestamp, signature }, `${post.body} `, T0), false);
    assert.equal(verifyWebhookSignature(SECRET, { timestamp, signature }, post.body, T0 + 6 * 60_000), false);
    const body = JSON.parse(post.body) as {
      events: { kind: string; detector: string; seq: number; hash: string }[];
    };
    assert.deepEqual(
      body.events.map((event) => [event.kind, event.detector, event.seq]),
      [['alert', 'brute-force', 7]],
    );
    assert.match(body.events[0]?.hash ?? '', /^[0-9a-f]{64}$/);
  });

  it('retries a 503 a bounded number of times and does not retry a 400', async () => {
    const flaky = await receiver((index) => (index < 2 ? 503 : 200));
    await webhookSink({ url: flaky.url, secret: SECRET, retries: 2, retryDelayMs: 1 }).write([entry(1)]);
    assert.equal(flaky.received.length, 3);

    const down = await receiver(() => 503);
    await assert.rejects(
      webhookSink({ url: down.url, secret: SECRET, retries: 2, retryDelayMs: 1 }).write([entry(1)]),
    );
    assert.equal(down.received.length, 3);

    const refusing = await receiver(() => 400);
    await assert.rejects(
      webhookSink({ url: refusing.url, secret: SECRET, retries: 5, retryDelayMs: 1 }).write([entry(1)]),
    );
    assert.equal(refusing.received.length, 1);
  });

  it('gives up on a receiver that does not answer within the timeout', async () => {
    const server = createHttpServer(() => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    after(() => server.closeAllConnections());
    after(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const started = Date.now();
    await assert.rejects(webhookSink({ url, secret: SECRET, timeoutMs: 100, retries: 0 }).write([entry(1)]));
    assert.ok(Date.now() - started < 5000);
  });
});

describe('syslog sink', () => {
  it('formats an RFC 5424 message with priority, kind as MSGID and chain data', () => {
    const message = formatSyslogMessage(entry(42, { decision: 'deny' }), {
      hostname: 'gw 1',
      appName: 'vigil',
    });
    const match = RFC5424.exec(message);
    assert.ok(match, message);
    assert.equal(match[1], String(13 * 8 + 5));
    assert.equal(match[2], new Date(T0 + 42).toISOString());
    assert.equal(match[3], 'gw1');
    assert.equal(match[6], 'decision');
    assert.equal(match[7], '42');
    assert.equal(JSON.parse(match[10] ?? '').path, '/index');
  });

  it('sends one datagram per event over UDP', async () => {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    after(() => socket.close());
    const messages: string[] = [];
    const got = new Promise<void>((resolve) => {
      socket.on('message', (message) => {
        messages.push(message.toString('utf8'));
        if (messages.length === 2) resolve();
      });
    });
    const sink = syslogSink({ host: '127.0.0.1', port: socket.address().port, protocol: 'udp' });
    await sink.write([entry(1), entry(2)]);
    await got;
    await sink.close?.();
    assert.deepEqual(
      messages.map((message) => RFC5424.exec(message)?.[7]),
      ['1', '2'],
    );
  });

  it('connects again over TCP after the receiver closed the connection', { timeout: 10_000 }, async () => {
    const connections: string[][] = [];
    let firstClosed: () => void = () => {};
    let secondGot: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      firstClosed = resolve;
    });
    const got = new Promise<void>((resolve) => {
      secondGot = resolve;
    });
    const server = createTcpServer((socket) => {
      const received: string[] = [];
      const index = connections.push(received) - 1;
      socket.on('data', (chunk) => {
        received.push(chunk.toString('utf8'));
        // The first receiver hangs up after one write, like a restarting collector.
        if (index === 0) socket.destroy();
        else secondGot();
      });
      if (index === 0) socket.on('close', () => firstClosed());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    after(() => server.close());
    const sink = syslogSink({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      protocol: 'tcp',
    });
    await sink.write([entry(1)]);
    await closed;
    // Let the client side see the hang-up (FIN) before the next write.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await sink.write([entry(2)]);
    await got;
    await sink.close?.();
    assert.equal(connections.length, 2);
    assert.match(connections[1]?.join('') ?? '', /seq="2"/);
  });

  it('frames messages over TCP with octet counting', async () => {
    const chunks: Buffer[] = [];
    const server = createTcpServer((socket) => socket.on('data', (chunk) => chunks.push(chunk)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    after(() => server.close());
    const sink = syslogSink({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      protocol: 'tcp',
    });
    await sink.write([entry(1, { path: '/ünïcode' }), entry(2)]);
    await sink.write([entry(3)]);
    await sink.close?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
    let stream = Buffer.concat(chunks);
    const frames: string[] = [];
    // Octet counting: "<length> <message>" with the length in bytes, not characters.
    for (let guard = 0; stream.length > 0 && guard < 10; guard++) {
      const space = stream.indexOf(0x20);
      const length = Number(stream.subarray(0, space).toString('ascii'));
      frames.push(stream.subarray(space + 1, space + 1 + length).toString('utf8'));
      stream = stream.subarray(space + 1 + length);
    }
    assert.deepEqual(
      frames.map((frame) => RFC5424.exec(frame)?.[7]),
      ['1', '2', '3'],
    );
    assert.equal(JSON.parse(RFC5424.exec(frames[0] ?? '')?.[10] ?? '').path, '/ünïcode');
  });
});
