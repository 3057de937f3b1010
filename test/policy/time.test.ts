import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowIf } from './helpers.ts';

const at = (iso: string) => ({ now: Date.parse(iso) });

test('office hours in America/New_York follow the March DST switch', () => {
  const decide = allowIf({
    time: {
      zone: 'America/New_York',
      weekdays: ['mon', 'tue', 'wed', 'thu', 'fri'],
      hours: { from: '09:00', to: '17:00' },
    },
  });
  // Friday 6 March 2026 is still EST (UTC-5).
  assert.equal(decide(at('2026-03-06T14:00:00Z')).effect, 'allow');
  assert.deepEqual(decide(at('2026-03-06T13:59:00Z')).reasons, ['outside-time-window']);
  assert.equal(decide(at('2026-03-06T21:59:00Z')).effect, 'allow');
  assert.equal(decide(at('2026-03-06T22:00:00Z')).effect, 'deny');
  // Monday 9 March 2026 is EDT (UTC-4): the same local hours are an hour earlier in UTC.
  assert.equal(decide(at('2026-03-09T13:00:00Z')).effect, 'allow');
  assert.equal(decide(at('2026-03-09T12:59:00Z')).effect, 'deny');
  assert.equal(decide(at('2026-03-09T20:59:00Z')).effect, 'allow');
  assert.equal(decide(at('2026-03-09T21:00:00Z')).effect, 'deny');
});

test('office hours in America/New_York follow the November DST switch', () => {
  const decide = allowIf({
    time: {
      zone: 'America/New_York',
      weekdays: ['mon', 'tue', 'wed', 'thu', 'fri'],
      hours: { from: '09:00', to: '17:00' },
    },
  });
  // Friday 30 October 2026: EDT.
  assert.equal(decide(at('2026-10-30T13:00:00Z')).effect, 'allow');
  // Monday 2 November 2026: EST again.
  assert.equal(decide(at('2026-11-02T13:00:00Z')).effect, 'deny');
  assert.equal(decide(at('2026-11-02T14:00:00Z')).effect, 'allow');
  assert.equal(decide(at('2026-11-02T21:59:00Z')).effect, 'allow');
});

test('on the spring-forward night the skipped local hour never matches', () => {
  const decide = allowIf({ time: { zone: 'America/New_York', hours: { from: '02:00', to: '03:00' } } });
  // 06:59Z is 01:59 EST; one minute later it is 03:00 EDT.
  assert.equal(decide(at('2026-03-08T06:59:00Z')).effect, 'deny');
  assert.equal(decide(at('2026-03-08T07:00:00Z')).effect, 'deny');
  assert.equal(decide(at('2026-03-07T07:30:00Z')).effect, 'allow');
});

test('on the fall-back night the repeated local hour matches both times', () => {
  const decide = allowIf({ time: { zone: 'America/New_York', hours: { from: '01:00', to: '02:00' } } });
  assert.equal(decide(at('2026-11-01T05:30:00Z')).effect, 'allow', '01:30 EDT');
  assert.equal(decide(at('2026-11-01T06:30:00Z')).effect, 'allow', '01:30 EST');
  assert.equal(decide(at('2026-11-01T07:30:00Z')).effect, 'deny', '02:30 EST');
});

test('weekdays are the weekday in the named zone, not in UTC', () => {
  const decide = allowIf({ time: { zone: 'Europe/Berlin', weekdays: ['mon', 'tue', 'wed', 'thu', 'fri'] } });
  // Friday 23:30 UTC is already Saturday 00:30 in Berlin.
  assert.equal(decide(at('2026-03-06T22:30:00Z')).effect, 'allow');
  assert.equal(decide(at('2026-03-06T23:30:00Z')).effect, 'deny');
});

test('a window past midnight belongs to the day it starts on', () => {
  const decide = allowIf({ time: { weekdays: ['fri'], hours: { from: '22:00', to: '06:00' } } });
  assert.equal(decide(at('2026-03-06T23:00:00Z')).effect, 'allow', 'Friday 23:00');
  assert.equal(decide(at('2026-03-07T05:59:00Z')).effect, 'allow', 'Saturday 05:59');
  assert.equal(decide(at('2026-03-07T06:00:00Z')).effect, 'deny', 'Saturday 06:00');
  assert.equal(decide(at('2026-03-06T02:00:00Z')).effect, 'deny', 'Friday 02:00 belongs to Thursday');
  assert.equal(decide(at('2026-03-06T21:59:00Z')).effect, 'deny');
});

test('hours without a zone are UTC and 24:00 closes the day', () => {
  const decide = allowIf({ time: { hours: { from: '12:00', to: '24:00' } } });
  assert.equal(decide(at('2026-03-06T23:59:00Z')).effect, 'allow');
  assert.equal(decide(at('2026-03-06T11:59:00Z')).effect, 'deny');
});

test('valid_from is inclusive and valid_until exclusive, for dates and date-times', () => {
  const grant = allowIf({ time: { valid_from: '2026-03-01', valid_until: '2026-03-02T12:00:00+01:00' } });
  assert.equal(grant(at('2026-02-28T23:59:59Z')).effect, 'deny');
  assert.equal(grant(at('2026-03-01T00:00:00Z')).effect, 'allow');
  assert.equal(grant(at('2026-03-02T10:59:59Z')).effect, 'allow');
  assert.deepEqual(grant(at('2026-03-02T11:00:00Z')).reasons, ['outside-time-window']);
});

test('the per-minute cache answers correctly when instants and zones interleave', () => {
  const ny = allowIf({ time: { zone: 'America/New_York', hours: { from: '09:00', to: '09:01' } } });
  const tokyo = allowIf({ time: { zone: 'Asia/Tokyo', hours: { from: '23:00', to: '23:01' } } });
  assert.equal(ny(at('2026-03-09T13:00:30Z')).effect, 'allow');
  assert.equal(tokyo(at('2026-03-09T14:00:10Z')).effect, 'allow');
  assert.equal(ny(at('2026-03-09T13:01:00Z')).effect, 'deny');
  assert.equal(ny(at('2026-03-09T13:00:59Z')).effect, 'allow');
  assert.equal(tokyo(at('2026-03-09T14:01:00Z')).effect, 'deny');
});
