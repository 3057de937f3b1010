import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import type { AuditRecord } from '../events.ts';
import type { AuditSink, SinkEntry } from '../sink.ts';

export const SYSLOG_DEFAULTS = {
  /** 13 = "log audit" (RFC 5424 table 1). */
  facility: 13,
  appName: 'vigil',
  timeoutMs: 5000,
  /** RFC 5426 asks receivers for at least 2048; most take 8 KiB. Longer messages are cut. */
  maxUdpBytes: 8192,
} as const;

/** Structured-data id; 32473 is the private enterprise number RFC 5612 reserves for examples. */
const SD_ID = 'vigil@32473';
const BOM = '\u{feff}';

export interface SyslogSinkOptions {
  host: string;
  port: number;
  protocol: 'udp' | 'tcp';
  facility?: number;
  appName?: string;
  /** HOSTNAME field; the machine's name by default. */
  hostname?: string;
  timeoutMs?: number;
  maxUdpBytes?: number;
  name?: string;
}

/** PRINTUSASCII without spaces, cut to `max`, or the nil value. */
function header(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

/** SD-PARAM value escaping (RFC 5424 6.3.3). */
const sdValue = (value: string) => value.replace(/[\\"\]]/g, (char) => `\\${char}`);

function severityOf(record: AuditRecord): number {
  if (record.kind === 'alert') return record.severity === 'high' ? 2 : 4;
  if (record.kind === 'decision') return record.decision === 'deny' ? 5 : 6;
  return 5;
}

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM JSON`.
 * MSGID is the event kind; structured data carries seq, id and chain hash, so a SIEM can
 * match a line to the verified log.
 */
export function formatSyslogMessage(
  entry: SinkEntry,
  options: { facility?: number; appName?: string; hostname?: string } = {},
): string {
  const { record, hash } = entry;
  const facility = options.facility ?? SYSLOG_DEFAULTS.facility;
  const pri = facility * 8 + severityOf(record);
  const time = new Date(record.time).toISOString();
  const sd = `[${SD_ID} seq="${record.seq}" id="${sdValue(record.id)}" hash="${hash}"]`;
  return `<${pri}>1 ${time} ${header(options.hostname ?? hostname(), 255)} ${header(options.appName ?? SYSLOG_DEFAULTS.appName, 48)} ${process.pid} ${header(record.kind, 32)} ${sd} ${BOM}${JSON.stringify(record)}`;
}

/** Cuts a UTF-8 message to `max` bytes without splitting a character. */
function cut(message: string, max: number): Buffer {
  const bytes = Buffer.from(message, 'utf8');
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/**
 * Streams durable events to syslog: UDP (one datagram per event, RFC 5426) or TCP with
 * octet-counting framing (`LEN SP MSG`, RFC 6587). The TCP connection is kept and made
 * again after an error; every connect and write has a timeout.
 */
export function syslogSink(options: SyslogSinkOptions): AuditSink {
  const timeoutMs = options.timeoutMs ?? SYSLOG_DEFAULTS.timeoutMs;
  const maxUdp = options.maxUdpBytes ?? SYSLOG_DEFAULTS.maxUdpBytes;
  const format = { facility: options.facility, appName: options.appName, hostname: options.hostname };
  if (options.facility !== undefined && (options.facility < 0 || options.facility > 23)) {
    throw new TypeError('syslog facility is 0..23');
  }
  let udp: UdpSocket | undefined;
  let tcp: Socket | undefined;

  const withTimeout = <T>(work: (done: (error?: Error | null, value?: T) => void) => void, what: string) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`syslog ${what} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      work((error, value) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(value as T);
      });
    });

  const tcpSocket = async (): Promise<Socket> => {
    if (tcp && !tcp.destroyed) return tcp;
    const socket = connect({ host: options.host, port: options.port });
    socket.on('error', () => socket.destroy());
    // Once the receiver hangs up, the next batch goes over a fresh connection; writes
    // in flight when it hung up are lost, as RFC 6587 has no acknowledgements.
    const forget = () => {
      if (tcp === socket) tcp = undefined;
    };
    socket.on('end', forget);
    socket.on('close', forget);
    // The receiver never talks back; reading keeps a half-closed socket from lingering.
    socket.resume();
    try {
      await withTimeout<void>((done) => {
        socket.once('connect', () => done());
        socket.once('error', (error) => done(error));
      }, 'connect');
    } catch (error) {
      socket.destroy();
      throw error;
    }
    tcp = socket;
    return socket;
  };

  const writeTo = async (socket: Socket, payload: Buffer) => {
    try {
      await withTimeout<void>((done) => socket.write(payload, (error) => done(error)), 'write');
    } catch (error) {
      socket.destroy();
      if (tcp === socket) tcp = undefined;
      throw error;
    }
  };

  const sendTcp = async (payload: Buffer) => {
    const reused = tcp !== undefined && !tcp.destroyed;
    try {
      await writeTo(await tcpSocket(), payload);
    } catch (error) {
      // A kept connection the receiver closed while idle fails on the next write: one
      // more attempt on a fresh connection. A fresh connection that fails is reported.
      if (!reused) throw error;
      await writeTo(await tcpSocket(), payload);
    }
  };

  const sendUdp = async (datagram: Buffer) => {
    if (!udp) {
      udp = createSocket(options.host.includes(':') ? 'udp6' : 'udp4');
      // Send failures reach the callback below; an unhandled socket error would crash the server.
      udp.on('error', () => {});
    }
    const socket = udp;
    await withTimeout<void>(
      (done) => socket.send(datagram, options.port, options.host, (error) => done(error)),
      'send',
    );
  };

  return {
    name: options.name ?? `syslog:${options.protocol}:${options.host}:${options.port}`,
    async write(entries: readonly SinkEntry[]) {
      if (options.protocol === 'udp') {
        for (const entry of entries) await sendUdp(cut(formatSyslogMessage(entry, format), maxUdp));
        return;
      }
      const frames = entries.map((entry) => {
        const message = Buffer.from(formatSyslogMessage(entry, format), 'utf8');
        return Buffer.concat([Buffer.from(`${message.length} `), message]);
      });
      await sendTcp(Buffer.concat(frames));
    },
    async close() {
      tcp?.end();
      tcp?.destroy();
      tcp = undefined;
      udp?.close();
      udp = undefined;
    },
  };
}
