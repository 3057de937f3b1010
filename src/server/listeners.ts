import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ListenAddress, VigilConfig } from '../config/index.ts';
import { VigilError } from '../errors.ts';

/** Headers larger than this are refused (431) before any handler runs. */
const MAX_HEADER_BYTES = 16 * 1024;
const HEADERS_TIMEOUT_MS = 10_000;
/**
 * How long an idle keep-alive connection stays open: nginx's default. Longer than the idle
 * timeout of the load balancers put in front (60 s on AWS ALB): with Node's 5 s default,
 * Vigil closes connections a balancer is about to reuse, and the request it sends at
 * that moment fails (a sporadic 502 there; the bench's client saw it too).
 */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;

/**
 * An HTTP or HTTPS listener. `deviceCaPem` (the internal CA's bundle) makes the listener
 * ask for client certificates as `client_ca_file` does; either way a client without one
 * still connects, and the proxy decides what a certificate (or its absence) means.
 */
export function createListener(
  handler: RequestListener,
  tls: VigilConfig['server']['tls'],
  deviceCaPem?: string,
  /** server.request_timeout: the whole request, body included, must arrive within it. */
  requestTimeoutMs = 60_000,
): Server {
  const options = {
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeoutMs),
    requestTimeout: requestTimeoutMs,
    // Node checks the timeouts this often (30 s by default): a short request timeout
    // would otherwise fire up to 30 s late.
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(requestTimeoutMs / 4))),
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // Requests with both Transfer-Encoding and Content-Length, or malformed framing,
    // are refused by the parser rather than guessed at.
    insecureHTTPParser: false,
  };
  if (!tls) return createHttpServer(options, handler);
  return createHttpsServer(
    {
      ...options,
      cert: readFileSync(tls.cert_file),
      key: readFileSync(tls.key_file),
      ...(tls.client_ca_file || deviceCaPem
        ? {
            ca: [
              ...(tls.client_ca_file ? [readFileSync(tls.client_ca_file, 'utf8')] : []),
              ...(deviceCaPem ? [deviceCaPem] : []),
            ],
            requestCert: true,
            rejectUnauthorized: false,
          }
        : {}),
    },
    handler,
  );
}

export function listen(server: Server, address: ListenAddress, name: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        new VigilError(
          'ERR_SERVER_LISTEN',
          `cannot listen for ${name} on ${formatAddress(address)}: ${error.code ?? error.message}` +
            (error.code === 'EADDRINUSE'
              ? ' (port in use; change server.' + name + '_listen or stop the other process)'
              : ''),
          { cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then cuts
 * whatever is left so that shutdown always ends.
 */
export function drain(server: Server, timeoutMs: number, atTimeout?: () => void): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      server.closeAllConnections();
      // Upgraded connections (WebSockets) are no longer the server's to close, yet its
      // close waits for them: their owner ends them.
      atTimeout?.();
    }, timeoutMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

export function formatAddress(address: ListenAddress | AddressInfo): string {
  const host = 'host' in address ? address.host : address.address;
  return host.includes(':') ? `[${host}]:${address.port}` : `${host}:${address.port}`;
}

export function urlOf(info: AddressInfo, secure: boolean): string {
  const host =
    info.address === '0.0.0.0'
      ? '127.0.0.1'
      : info.address === '::'
        ? '[::1]'
        : formatAddress(info).replace(/:\d+$/, '');
  return `${secure ? 'https' : 'http'}://${host}:${info.port}`;
}
