import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCidr, parseIpv4 } from '../../src/policy/conditions/network.ts';
import { allowIf } from './helpers.ts';

test('IPv4 CIDRs match addresses inside the range only', () => {
  const decide = allowIf({ source_ip: ['10.20.0.0/16', '192.168.1.7'] });
  assert.equal(decide({ sourceIp: '10.20.255.1' }).effect, 'allow');
  assert.equal(decide({ sourceIp: '10.20.0.0' }).effect, 'allow');
  assert.equal(decide({ sourceIp: '192.168.1.7' }).effect, 'allow');
  assert.deepEqual(decide({ sourceIp: '10.21.0.1' }).reasons, ['source-ip-denied']);
  assert.equal(decide({ sourceIp: '192.168.1.8' }).effect, 'deny');
});

test('a /0 matches every address of its family and /32 exactly one', () => {
  assert.equal(allowIf({ source_ip: ['0.0.0.0/0'] })({ sourceIp: '255.255.255.255' }).effect, 'allow');
  assert.equal(allowIf({ source_ip: ['0.0.0.0/0'] })({ sourceIp: '2001:db8::1' }).effect, 'deny');
  assert.equal(allowIf({ source_ip: ['::/0'] })({ sourceIp: '2001:db8::1' }).effect, 'allow');
  assert.equal(allowIf({ source_ip: ['1.2.3.4/32'] })({ sourceIp: '1.2.3.5' }).effect, 'deny');
});

test('IPv6 CIDRs match across word boundaries and compressed forms', () => {
  const decide = allowIf({ source_ip: ['2001:db8:abcd::/48', 'fd00::/8', '2001:db8:0:1:ffff::/80'] });
  assert.equal(decide({ sourceIp: '2001:db8:abcd:12::1' }).effect, 'allow');
  assert.equal(decide({ sourceIp: '2001:0DB8:ABCD:0000:0000:0000:0000:0001' }).effect, 'allow');
  assert.equal(decide({ sourceIp: 'fdff:1::' }).effect, 'allow');
  assert.equal(decide({ sourceIp: '2001:db8:0:1:ffff:1:2:3' }).effect, 'allow');
  assert.equal(decide({ sourceIp: '2001:db8:0:1:fffe::1' }).effect, 'deny');
  assert.equal(decide({ sourceIp: '2001:db8:abce::1' }).effect, 'deny');
  assert.equal(decide({ sourceIp: 'fe80::1%eth0' }).effect, 'deny');
  assert.equal(allowIf({ source_ip: ['fe80::/10'] })({ sourceIp: 'fe80::1%eth0' }).effect, 'allow');
});

test('an IPv4-mapped IPv6 address matches IPv4 ranges', () => {
  const decide = allowIf({ source_ip: ['10.0.0.0/8'] });
  assert.equal(decide({ sourceIp: '::ffff:10.1.2.3' }).effect, 'allow');
  assert.equal(decide({ sourceIp: '::ffff:11.1.2.3' }).effect, 'deny');
});

test('a missing or malformed source address never matches and never throws', () => {
  const decide = allowIf({ source_ip: ['0.0.0.0/0', '::/0'] });
  for (const sourceIp of [
    undefined,
    '',
    'not-an-ip',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1::2::3',
    ':::',
    '1:2:3:4:5:6:7:8:9',
  ]) {
    assert.deepEqual(decide({ sourceIp }).reasons, ['source-ip-denied'], String(sourceIp));
  }
});

test('CIDR parsing rejects malformed prefixes and host bits are masked off', () => {
  assert.equal(parseCidr('10.0.0.0/33'), undefined);
  assert.equal(parseCidr('::/129'), undefined);
  assert.equal(parseCidr('10.0.0.0/'), undefined);
  assert.equal(parseCidr('10.0.0.0/-1'), undefined);
  assert.equal(parseCidr('10.1.2.3/8')?.words[0], parseIpv4('10.0.0.0'));
});
