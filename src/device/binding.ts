import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { CertificateAuthority, PeerCertificateCheck } from '../ca/index.ts';
import { type Clock, systemClock } from '../internal/clock.ts';
import type { DeviceInventory, PolicyDevice } from './inventory.ts';

/** Why a presented client certificate made the proxy refuse the request outright. */
export type PeerRefusal = 'cert-expired' | 'cert-revoked' | 'cert-untrusted' | 'device-unknown';

export type PeerDevice =
  | { device: PolicyDevice; refused?: undefined }
  | { device?: undefined; refused: PeerRefusal }
  | { device?: undefined; refused?: undefined };

const NONE: PeerDevice = Object.freeze({});
const CHECKED = Symbol('vigil.peerCheck');

type CheckedSocket = TLSSocket & { [CHECKED]?: PeerCheckResult };
type PeerCheckResult = PeerCheckOk | { ok: false; reason: PeerRefusal; trustedElsewhere: boolean };
interface PeerCheckOk {
  ok: true;
  kind: 'device' | 'workload';
  id: string;
  serial: string;
  notAfterMs: number;
}

/**
 * Finds the device behind a request from the client certificate of its TLS connection.
 * The certificate's chain and signature are checked once per connection (the TLS
 * handshake already proved the key); expiry and revocation on every request, since a
 * keep-alive connection outlives both. A certificate the internal CA did not issue is
 * refused unless the listener's own client CA trusts it (then it is no device).
 */
export class DeviceBinding {
  readonly #ca: CertificateAuthority;
  readonly #inventory: DeviceInventory;
  readonly #clock: Clock;

  constructor(options: { ca: CertificateAuthority; inventory: DeviceInventory; clock?: Clock }) {
    this.#ca = options.ca;
    this.#inventory = options.inventory;
    this.#clock = options.clock ?? systemClock;
  }

  resolve(request: IncomingMessage): PeerDevice {
    const socket = request.socket as CheckedSocket;
    if (typeof socket.getPeerCertificate !== 'function') return NONE;
    let checked = socket[CHECKED];
    if (checked === undefined) {
      checked = this.#check(socket);
      socket[CHECKED] = checked;
    }
    if (!checked.ok) {
      if (checked.trustedElsewhere) return NONE;
      return { refused: checked.reason };
    }
    if (this.#clock.now() >= checked.notAfterMs) return { refused: 'cert-expired' };
    if (this.#ca.isRevoked(checked.serial)) return { refused: 'cert-revoked' };
    if (checked.kind !== 'device') return NONE;
    const device = this.#inventory.get(checked.id);
    // A certificate issued outside enrollment (`vigil ca issue`) names no enrolled device.
    if (device === undefined) return { refused: 'device-unknown' };
    // Revoked in the inventory: refused at once, before the certificate revocation that
    // follows has reached this replica.
    if (device.state === 'revoked') return { refused: 'cert-revoked' };
    return { device };
  }

  #check(socket: TLSSocket): PeerCheckResult {
    const raw = socket.getPeerCertificate(false)?.raw;
    // No certificate presented: a request like any other, without a device.
    if (raw === undefined) return { ok: false, reason: 'cert-untrusted', trustedElsewhere: true };
    const result: PeerCertificateCheck = this.#ca.checkPeerCertificate(raw);
    if (result.ok) {
      return {
        ok: true,
        kind: result.kind,
        id: result.id,
        serial: result.serial,
        notAfterMs: result.notAfter.getTime(),
      };
    }
    // Ours but not an SVID cannot happen with certificates this CA issued: untrusted.
    const reason = result.reason === 'cert-not-svid' ? 'cert-untrusted' : result.reason;
    // The listener trusts the internal CA too, so `authorized` says nothing about a
    // certificate this CA issued: only a foreign one (client_ca_file) may pass as no device.
    return {
      ok: false,
      reason,
      trustedElsewhere: result.reason === 'cert-untrusted' && socket.authorized === true,
    };
  }
}
