import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { Agent } from 'undici';
import {
  loadDevice,
  POSTURE_REPORT_TYPE,
  signDeviceRequest,
  signProviderPayload,
} from '../../src/device/index.ts';
import { CLI, runCli, spawnServer } from '../support/cli.ts';
import { Browser } from '../support/cookie-jar.ts';
import { encryptedLinuxRoot } from '../support/host-root.ts';
import { certificates } from '../support/tls.ts';
import { tempDir } from '../support/tmp.ts';

const PROVIDER_SECRET = 'mdm-webhook-secret-0123456789abcdef';

/** `vigil device enroll` in the background: resolves the code it prints, then its exit. */
function startEnroll(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'device', 'enroll', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const prompt = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no enrollment URL within 20 s: ${stderr}`)), 20_000);
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderr += `${line}\n`;
      const url = /open (https:\/\/\S+)/.exec(line)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        resolve(url);
      }
    });
  });
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return { prompt, exit };
}

/** A vigil server with TLS, the internal CA, the dev IdP, an MDM provider and a device-gated route. */
async function startDeviceServer() {
  const dir = tempDir();
  const tls = certificates(dir);
  const database = `sqlite://${join(dir, 'data', 'vigil.db')}`;
  const caKey = join(dir, 'vigil-ca.key');
  const init = await runCli([
    'ca',
    'init',
    '--trust-domain',
    'corp.example',
    '--key-file',
    caKey,
    '--database',
    database,
  ]);
  assert.equal(init.code, 0, init.stderr);

  const upstream = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({ user: request.headers['x-vigil-user'], device: request.headers['x-vigil-device'] }),
    );
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  after(() => upstream.close());

  writeFileSync(join(dir, 'mdm.secret'), `${PROVIDER_SECRET}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'policy.yaml'),
    `policies:
  - name: compliant-engineers
    rules:
      - name: engineers-on-managed-encrypted-devices
        allow:
          and:
            - groups: { any: [engineering] }
            - device: managed
            - posture: { disk_encrypted: true, max_age: 1h }
`,
  );
  const config = join(dir, 'vigil.yaml');
  writeFileSync(
    config,
    `server:
  proxy_listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  data_dir: ${join(dir, 'data')}
  shutdown_timeout: 2s
  tls:
    cert_file: ${tls.cert}
    key_file: ${tls.key}
database: { url: "${database}" }
log: { format: json }
dev_idp:
  listen: 127.0.0.1:0
ca:
  key_file: ${caKey}
devices:
  providers:
    - name: mdm
      secret_file: ${join(dir, 'mdm.secret')}
policy_files: [policy.yaml]
routes:
  - name: app
    from: https://127.0.0.1/app
    to: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    policy: compliant-engineers
`,
  );
  const server = await spawnServer(config);
  const adminFlags = [
    '--server',
    server.adminUrl,
    '--token-file',
    join(dir, 'data', 'admin.token'),
    '--json',
  ];
  return { dir, tls, server, adminFlags, database, caKey };
}

describe('device trust end to end', () => {
  it('enrolls with a browser login, reports posture, and gates a route on managed + disk encryption', async () => {
    const { dir, tls, server, adminFlags } = await startDeviceServer();
    const serverCa = readFileSync(tls.ca, 'utf8');
    const agents: Agent[] = [];
    after(() => Promise.all(agents.map((agent) => agent.close())));
    try {
      // 1. Enroll: the terminal shows a code, alice approves it in her browser after logging in.
      const deviceDir = join(dir, 'device');
      const enroll = startEnroll([
        '--server',
        server.proxyUrl,
        '--server-ca',
        tls.ca,
        '--dir',
        deviceDir,
        '--name',
        'alice-laptop',
        '--json',
      ]);
      const activateUrl = await enroll.prompt;
      const plainAgent = new Agent({ connect: { ca: serverCa } });
      agents.push(plainAgent);
      const approver = new Browser({ dispatcher: plainAgent });
      const page = await approver.login(activateUrl, 'alice');
      assert.equal(page.status, 200, page.body);
      assert.match(page.body, /alice-laptop/);
      const userCode = /name="user_code" value="([A-Z-]+)"/.exec(page.body)?.[1];
      assert.ok(userCode, page.body);
      // A form post from another site is refused: the Origin must be Vigil's own.
      const forged = await approver.request(new URL('/.vigil/device/activate', server.proxyUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
        body: new URLSearchParams({ user_code: userCode, decision: 'approve' }).toString(),
      });
      assert.equal(forged.status, 403);
      const approved = await approver.request(new URL('/.vigil/device/activate', server.proxyUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.proxyUrl },
        body: new URLSearchParams({ user_code: userCode, decision: 'approve' }).toString(),
      });
      assert.equal(approved.status, 200, approved.body);
      const enrolled = await enroll.exit;
      assert.equal(enrolled.code, 0, enrolled.stderr);
      const deviceId = (JSON.parse(enrolled.stdout) as { device_id: string; state: string }).device_id;
      assert.equal((JSON.parse(enrolled.stdout) as { state: string }).state, 'registered');
      assert.equal(statSync(join(deviceDir, 'key.pem')).mode & 0o777, 0o600, 'the device key is private');

      // 2. The agent reports posture once (a LUKS root seen through --host-root).
      const agentRun = await agentOnce(deviceDir, dir);
      assert.equal(agentRun.code, 0, agentRun.stderr);
      assert.match(JSON.parse(agentRun.stdout).diskEncrypted, /^true /);

      // 3. Requests over mTLS with the device certificate, in alice's browser session.
      const device = loadDevice(deviceDir);
      const mtls = clientWith(tls.ca, join(deviceDir, 'cert.pem'), join(deviceDir, 'key.pem'));
      agents.push(mtls);
      const laptop = new Browser({ dispatcher: mtls });
      await laptop.login(new URL('/.vigil/login?rd=/app/', server.proxyUrl), 'alice');
      const appUrl = new URL('/app/hello', server.proxyUrl);
      const json = { accept: 'application/json' };
      const unmanaged = await laptop.request(appUrl, { headers: json });
      assert.equal(unmanaged.status, 403);
      assert.deepEqual(JSON.parse(unmanaged.body).reasons, ['device-unmanaged']);

      const approve = await runCli(['device', 'approve', deviceId, ...adminFlags]);
      assert.equal(approve.code, 0, approve.stderr);
      assert.equal(JSON.parse(approve.stdout).state, 'managed');
      const allowed = await waitFor(async () => {
        const visit = await laptop.request(appUrl, { headers: json });
        return visit.status === 200 ? visit : undefined;
      });
      assert.deepEqual(JSON.parse(allowed.body), { user: 'dev:alice', device: deviceId });

      // The same session without the device certificate has no device.
      const sameSession = new Browser({ dispatcher: plainAgent });
      sameSession.jar.set(
        server.proxyUrl,
        '_vigil_session',
        laptop.jar.get(server.proxyUrl, '_vigil_session') ?? '',
      );
      const noCert = await sameSession.request(appUrl, { headers: json });
      assert.equal(noCert.status, 403);
      assert.deepEqual(JSON.parse(noCert.body).reasons, ['device-missing']);

      // 4. The MDM says the disk is no longer encrypted: denied on the next request.
      const webhookBody = JSON.stringify({ device_id: deviceId, disk_encrypted: false });
      const signature = signProviderPayload(PROVIDER_SECRET, webhookBody, Math.floor(Date.now() / 1000));
      const webhook = (body: string, header: string) =>
        fetch(new URL('/.vigil/posture/mdm', server.proxyUrl), {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json', 'x-vigil-signature': header },
          dispatcher: plainAgent,
        } as RequestInit);
      assert.equal(
        (
          await webhook(
            webhookBody,
            signature.replace(/v1=(.)/, (_, first: string) => `v1=${first === '0' ? '1' : '0'}`),
          )
        ).status,
        401,
        'bad HMAC',
      );
      const flipped = await webhook(webhookBody, signature);
      assert.equal(flipped.status, 202, await flipped.text());
      assert.equal((await webhook(webhookBody, signature)).status, 409, 'a replayed webhook is refused');
      const denied = await waitFor(async () => {
        const visit = await laptop.request(appUrl, { headers: json });
        return visit.status === 403 ? visit : undefined;
      });
      assert.deepEqual(JSON.parse(denied.body).reasons, ['device-posture-failed']);

      // 5. Posture reports: a replay and a report signed by another key are refused.
      const report = await signDeviceRequest(
        device.key,
        deviceId,
        POSTURE_REPORT_TYPE,
        { posture: { osFamily: 'linux', diskEncrypted: true } },
        Date.now(),
      );
      const postReport = (body: string) =>
        fetch(new URL('/.vigil/device/posture', server.proxyUrl), {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/jose' },
          dispatcher: plainAgent,
        } as RequestInit);
      assert.equal((await postReport(report)).status, 202);
      const replay = await postReport(report);
      assert.equal(replay.status, 409);
      assert.equal(((await replay.json()) as { error: string }).error, 'ERR_DEVICE_REPORT_REPLAYED');
      // Counted when the response has gone out, so the scrape may come a moment early.
      const metrics = await waitFor(async () => {
        const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
        return /endpoint="posture",status="409"/.test(text) ? text : undefined;
      });
      assert.match(metrics, /vigil_device_requests_total\{endpoint="posture",status="409"[^}]*\} 1/);
      assert.match(metrics, /vigil_device_requests_total\{endpoint="provider:mdm",status="202"[^}]*\} 1/);
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const forgedReport = await signDeviceRequest(
        stranger,
        deviceId,
        POSTURE_REPORT_TYPE,
        { posture: { diskEncrypted: true } },
        Date.now(),
      );
      const badlySigned = await postReport(forgedReport);
      assert.equal(badlySigned.status, 401);
      assert.equal(((await badlySigned.json()) as { error: string }).error, 'ERR_DEVICE_REPORT_INVALID');

      // The agent keeps the state the server answers with, for `vigil device status`.
      assert.equal((await agentOnce(deviceDir, dir)).code, 0);
      const status = await runCli(['device', 'status', '--dir', deviceDir, '--json']);
      assert.equal(JSON.parse(status.stdout).state, 'managed');

      // 6. Revoking the device refuses its certificate from the next request on.
      const revoke = await runCli(['device', 'revoke', deviceId, '--reason', 'lost', ...adminFlags]);
      assert.equal(revoke.code, 0, revoke.stderr);
      const refused = await waitFor(async () => {
        const visit = await laptop.request(appUrl, { headers: json });
        return visit.status === 403 && JSON.parse(visit.body).error === 'cert-revoked' ? visit : undefined;
      });
      assert.equal(JSON.parse(refused.body).error, 'cert-revoked');
      const listed = await runCli(['device', 'list', ...adminFlags]);
      assert.equal(JSON.parse(listed.stdout)[0].state, 'revoked');
      const lateAgent = await runCli([
        'agent',
        '--once',
        '--dir',
        deviceDir,
        '--host-root',
        encryptedLinuxRoot(dir),
      ]);
      assert.equal(lateAgent.code, 1);
      assert.match(lateAgent.stderr, /revoked/);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});

describe('device enrollment with a token', () => {
  it('enrolls a managed device with a one-use token, refuses the token twice, and renews past half-life', async () => {
    const { dir, tls, server, adminFlags, database, caKey } = await startDeviceServer();
    try {
      const created = await runCli([
        'device',
        'token',
        'create',
        '--managed',
        '--uses',
        '1',
        '--ttl',
        '1h',
        ...adminFlags,
      ]);
      assert.equal(created.code, 0, created.stderr);
      const token = (JSON.parse(created.stdout) as { token: string }).token;
      const tokenFile = join(dir, 'enroll.token');
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      const enroll = (deviceDir: string) =>
        runCli([
          'device',
          'enroll',
          '--server',
          server.proxyUrl,
          '--server-ca',
          tls.ca,
          '--dir',
          deviceDir,
          '--token-file',
          tokenFile,
          '--json',
        ]);
      const first = await enroll(join(dir, 'runner-1'));
      assert.equal(first.code, 0, first.stderr);
      assert.equal((JSON.parse(first.stdout) as { state: string }).state, 'managed');
      const second = await enroll(join(dir, 'runner-2'));
      assert.equal(second.code, 1);
      assert.match(second.stderr, /used up/);

      // Past half its lifetime the agent renews the certificate before reporting.
      const deviceDir = join(dir, 'runner-1');
      const before = loadDevice(deviceDir);
      const infoFile = join(deviceDir, 'device.json');
      writeFileSync(
        infoFile,
        JSON.stringify({ ...before.info, renew_after: new Date(Date.now() - 1000).toISOString() }),
        { mode: 0o600 },
      );
      const agent = await agentOnce(deviceDir, dir);
      assert.equal(agent.code, 0, agent.stderr);
      assert.equal(JSON.parse(agent.stdout).renewed, true);
      const after = loadDevice(deviceDir);
      assert.notEqual(after.info.serial, before.info.serial);
      assert.equal(after.info.device_id, before.info.device_id);
      assert.ok(Date.parse(after.info.renew_after) > Date.now(), 'the new certificate renews later');
      const status = await runCli(['device', 'status', '--dir', deviceDir, '--json']);
      assert.equal(JSON.parse(status.stdout).certificate_serial, after.info.serial);

      // A certificate past its notAfter is refused by the proxy, even on a kept-alive connection.
      execFileSync('openssl', [
        'req',
        '-new',
        '-key',
        join(deviceDir, 'key.pem'),
        '-subj',
        '/CN=short',
        '-out',
        join(dir, 'short.csr'),
      ]);
      const short = await runCli([
        'ca',
        'issue',
        '--kind',
        'device',
        '--csr',
        join(dir, 'short.csr'),
        '--id',
        after.info.device_id,
        '--ttl',
        '2s',
        '--out',
        join(dir, 'short.pem'),
        '--key-file',
        caKey,
        '--database',
        database,
      ]);
      assert.equal(short.code, 0, short.stderr);
      const shortLived = clientWith(tls.ca, join(dir, 'short.pem'), join(deviceDir, 'key.pem'));
      try {
        const client = new Browser({ dispatcher: shortLived });
        const appUrl = new URL('/app/', server.proxyUrl);
        const fresh = await client.request(appUrl, { headers: { accept: 'application/json' } });
        assert.equal(fresh.status, 401, 'a valid certificate without a login: unauthenticated, not refused');
        const expired = await waitFor(async () => {
          const visit = await client.request(appUrl, { headers: { accept: 'application/json' } });
          return visit.status === 403 ? visit : undefined;
        });
        assert.equal(JSON.parse(expired.body).error, 'cert-expired');
      } finally {
        await shortLived.close();
      }
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});

/** `vigil agent --once` for the device in `deviceDir`, on a host whose root is LUKS-encrypted. */
function agentOnce(deviceDir: string, base: string) {
  return runCli(['agent', '--once', '--dir', deviceDir, '--host-root', encryptedLinuxRoot(base), '--json']);
}

/** An HTTPS client trusting the test CA and presenting a client certificate. */
function clientWith(caFile: string, certFile: string, keyFile: string): Agent {
  return new Agent({
    connect: {
      ca: readFileSync(caFile, 'utf8'),
      cert: readFileSync(certFile, 'utf8'),
      key: readFileSync(keyFile, 'utf8'),
    },
  });
}

/** Polls until `probe` returns a value (change-feed effects are asynchronous), for at most 5 s. */
async function waitFor<T>(probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('condition not reached within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
