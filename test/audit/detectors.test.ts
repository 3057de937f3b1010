import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AlertInput,
  type AuditEvent,
  afterHoursDetector,
  bruteForceDetector,
  createAuditLog,
  type Detector,
  lateralMovementDetector,
  newDeviceDetector,
  postureDetector,
  queryEvents,
  type RiskFlag,
  tokenReplayDetector,
} from '../../src/audit/index.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { decision, T0, withStore } from './helpers.ts';

const MINUTE = 60_000;

/** Feeds events to one detector; returns what it said about each. */
function feed(
  detector: Detector,
  events: readonly AuditEvent[],
): { flags: RiskFlag[]; alerts: AlertInput[] }[] {
  return events.map((event) => {
    const flags: RiskFlag[] = [];
    const alerts: AlertInput[] = [];
    detector.observe(event, { flag: (risk) => flags.push(risk), alert: (alert) => alerts.push(alert) });
    return { flags, alerts };
  });
}

const deny = (time: number, sourceIp = '203.0.113.9') =>
  decision({ time, sourceIp, decision: 'deny', user: null, rule: null, reasons: ['user-unauthenticated'] });

describe('brute-force detector', () => {
  it('five denials from one IP within five minutes raise nothing; the sixth raises an alert', () => {
    const seen = feed(
      bruteForceDetector(),
      [0, 1, 2, 3, 4, 4.5].map((minute) => deny(T0 + minute * MINUTE)),
    );
    assert.deepEqual(
      seen.slice(0, 5).map((result) => result.flags.length),
      [0, 0, 0, 0, 0],
    );
    assert.deepEqual(seen[5]?.flags, ['brute-force']);
    assert.equal(seen[5]?.alerts[0]?.key, '203.0.113.9');
    assert.equal(seen[5]?.alerts[0]?.evidence?.length, 6);
  });

  it('a denial exactly five minutes old has left the window; one millisecond younger has not', () => {
    const times = [0, 1, 2, 3, 4].map((minute) => T0 + minute * MINUTE);
    const exactly = feed(bruteForceDetector(), [...times.map((time) => deny(time)), deny(T0 + 5 * MINUTE)]);
    assert.deepEqual(exactly[5]?.flags, []);
    const younger = feed(bruteForceDetector(), [
      ...times.map((time) => deny(time)),
      deny(T0 + 5 * MINUTE - 1),
    ]);
    assert.deepEqual(younger[5]?.flags, ['brute-force']);
  });

  it('counts each source IP on its own and ignores allowed requests', () => {
    const events = [
      ...[0, 1, 2, 3, 4].map((second) => deny(T0 + second * 1000, '203.0.113.1')),
      decision({ time: T0 + 5000, sourceIp: '203.0.113.1' }),
      deny(T0 + 6000, '203.0.113.2'),
    ];
    assert.ok(feed(bruteForceDetector(), events).every((result) => result.flags.length === 0));
  });

  it('takes its threshold and window as options', () => {
    const seen = feed(bruteForceDetector({ threshold: 2, windowMs: 1000 }), [
      deny(T0),
      deny(T0 + 500),
      deny(T0 + 999),
    ]);
    assert.deepEqual(seen[2]?.flags, ['brute-force']);
  });
});

describe('lateral-movement detector', () => {
  it('flags an identity reaching more distinct routes than allowed within the window', () => {
    const detector = lateralMovementDetector({ maxRoutes: 3, maxDeniedRoutes: 10, windowMs: 10 * MINUTE });
    const routes = ['a', 'b', 'c', 'a', 'd'];
    const seen = feed(
      detector,
      routes.map((route, index) => decision({ time: T0 + index * MINUTE, route })),
    );
    assert.deepEqual(
      seen.map((result) => result.flags.length),
      [0, 0, 0, 0, 1],
    );
    assert.equal(seen[4]?.alerts[0]?.key, 'dev:alice');
  });

  it('flags denials on more distinct routes than allowed, and forgets routes outside the window', () => {
    const detector = lateralMovementDetector({ maxRoutes: 100, maxDeniedRoutes: 2, windowMs: 5 * MINUTE });
    const denied = (route: string, minute: number) =>
      decision({ time: T0 + minute * MINUTE, route, decision: 'deny', reasons: ['group-missing'] });
    const slow = feed(detector, [denied('a', 0), denied('b', 3), denied('c', 6)]);
    assert.ok(slow.every((result) => result.flags.length === 0));
    const fast = feed(lateralMovementDetector({ maxDeniedRoutes: 2 }), [
      denied('a', 0),
      denied('b', 1),
      denied('c', 2),
    ]);
    assert.deepEqual(fast[2]?.flags, ['lateral-movement']);
    assert.equal(fast[2]?.alerts[0]?.severity, 'high');
  });
});

describe('after-hours detector', () => {
  // 2026-01-05 is a Monday.
  const at = (iso: string) => decision({ time: Date.parse(iso) });

  it('flags access outside working hours in the named time zone', () => {
    const detector = afterHoursDetector({ timeZone: 'Europe/Berlin', start: '08:00', end: '18:00' });
    const seen = feed(detector, [
      at('2026-01-05T07:30:00Z'), // 08:30 in Berlin: inside
      at('2026-01-05T16:59:00Z'), // 17:59: inside
      at('2026-01-05T17:00:00Z'), // 18:00: outside (end is exclusive)
      at('2026-01-05T06:59:00Z'), // 07:59: outside
      at('2026-01-10T10:00:00Z'), // Saturday: outside
    ]);
    assert.deepEqual(
      seen.map((result) => result.flags.length),
      [0, 0, 1, 1, 1],
    );
    assert.equal(seen[2]?.alerts[0]?.key, 'dev:alice');
  });

  it('the same instant is inside hours in one zone and outside in another', () => {
    const event = at('2026-01-05T15:00:00Z');
    assert.equal(feed(afterHoursDetector({ timeZone: 'Europe/London' }), [event])[0]?.flags.length, 0);
    assert.deepEqual(feed(afterHoursDetector({ timeZone: 'Asia/Tokyo' }), [event])[0]?.flags, [
      'after-hours',
    ]);
  });

  it('flags a denied request outside hours without raising an alert', () => {
    const seen = feed(afterHoursDetector({ timeZone: 'UTC' }), [
      decision({ time: Date.parse('2026-01-05T23:00:00Z'), decision: 'deny' }),
    ]);
    assert.deepEqual(seen[0], { flags: ['after-hours'], alerts: [] });
  });

  it('refuses an unknown time zone at construction', () => {
    assert.throws(() => afterHoursDetector({ timeZone: 'Mars/Olympus' }), TypeError);
  });
});

describe('posture detector', () => {
  it('flags device-posture-failed and posture-stale reasons and alerts per device', () => {
    const seen = feed(postureDetector(), [
      decision({ decision: 'deny', reasons: ['device-posture-failed'] }),
      decision({ decision: 'deny', reasons: ['posture-stale'], device: 'dev-2' }),
      decision({ decision: 'deny', reasons: ['group-missing'] }),
    ]);
    assert.deepEqual(seen[0]?.flags, ['device-posture-failed']);
    assert.equal(seen[0]?.alerts[0]?.key, 'dev-laptop-1');
    assert.deepEqual(seen[1]?.flags, ['posture-stale']);
    assert.deepEqual(seen[2], { flags: [], alerts: [] });
  });
});

describe('new-device detector', () => {
  it('alerts the first time a known user shows up with another device', () => {
    const seen = feed(newDeviceDetector(), [
      decision({ device: 'laptop' }),
      decision({ device: 'laptop' }),
      decision({ device: 'phone' }),
      decision({ device: 'phone' }),
      decision({ user: 'dev:bob', device: 'tablet' }),
    ]);
    assert.deepEqual(
      seen.map((result) => result.flags.length),
      [0, 0, 1, 0, 0],
    );
    assert.equal(seen[2]?.alerts[0]?.key, 'dev:alice/phone');
  });

  it('alerts from the first request when seeded from the inventory', () => {
    const seen = feed(newDeviceDetector({ known: [['dev:bob', 'desktop']] }), [
      decision({ user: 'dev:bob', device: 'usb-stick' }),
    ]);
    assert.deepEqual(seen[0]?.flags, ['new-device']);
  });
});

describe('token-replay detector', () => {
  it('flags one session used from two source IPs within the window', () => {
    const seen = feed(tokenReplayDetector({ windowMs: 10 * MINUTE }), [
      decision({ time: T0, sourceIp: '198.51.100.1' }),
      decision({ time: T0 + MINUTE, sourceIp: '198.51.100.1' }),
      decision({ time: T0 + 2 * MINUTE, sourceIp: '192.0.2.66' }),
    ]);
    assert.deepEqual(
      seen.map((result) => result.flags.length),
      [0, 0, 1],
    );
    assert.equal(seen[2]?.alerts[0]?.key, 'sess-1');
  });

  it('does not flag a session that moved to a new IP after the window', () => {
    const seen = feed(tokenReplayDetector({ windowMs: 10 * MINUTE }), [
      decision({ time: T0, sourceIp: '198.51.100.1' }),
      decision({ time: T0 + 10 * MINUTE, sourceIp: '192.0.2.66' }),
    ]);
    assert.equal(seen[1]?.flags.length, 0);
  });
});

describe('detectors in the audit log', () => {
  it('stores alerts as chained events, flags decisions, and deduplicates per detector and key', async () => {
    await withStore(freshSqliteUrl(), async (store) => {
      const clock = new ManualClock(T0);
      const log = createAuditLog(store, {
        clock,
        detectors: [bruteForceDetector(), postureDetector()],
        alertDedupeMs: 10 * MINUTE,
      });
      for (let index = 0; index < 8; index++) log.enqueue(deny(T0 + index * 1000));
      // After the dedupe window the same source alerts again.
      for (let index = 0; index < 6; index++) log.enqueue(deny(T0 + 11 * MINUTE + index * 1000));
      log.enqueue(decision({ time: T0 + 12 * MINUTE, decision: 'deny', reasons: ['device-posture-failed'] }));
      await log.close();
      assert.deepEqual(log.stats.alerts, { 'brute-force': 2, posture: 1 });
      const alerts = await queryEvents(store, { kind: 'alert', order: 'asc' });
      assert.deepEqual(
        alerts.events.map((event) => (event.kind === 'alert' ? [event.detector, event.key] : [])),
        [
          ['brute-force', '203.0.113.9'],
          ['brute-force', '203.0.113.9'],
          ['posture', 'dev-laptop-1'],
        ],
      );
      // Each alert directly follows the event that raised it.
      const first = alerts.events[0];
      assert.ok(first);
      const before = await queryEvents(store, { beforeSeq: first.seq, limit: 1 });
      assert.equal(before.events[0]?.kind, 'decision');
      const flagged = await queryEvents(store, { kind: 'decision', risk: 'brute-force', limit: 100 });
      assert.equal(flagged.events.length, 3 + 1);
      const risky = await queryEvents(store, { kind: 'decision', risk: true, since: T0, limit: 100 });
      assert.equal(risky.events.length, 3 + 1 + 1);
    });
  });
});
