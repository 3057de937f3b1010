import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnServer } from '../support/cli.ts';
import { tempDir } from '../support/tmp.ts';

const PROMTOOL = process.env.VIGIL_TEST_PROMTOOL ?? '/usr/bin/promtool';
const RULES = new URL('../../deploy/prometheus/', import.meta.url).pathname;

describe('deploy/prometheus/alerts.yaml', () => {
  it('is valid and its alerts fire on the recorded series in alerts.test.yaml (promtool)', () => {
    assert.ok(existsSync(PROMTOOL), `${PROMTOOL} is missing: apt-get install prometheus (bash .ci/run does)`);
    const check = execFileSync(PROMTOOL, ['check', 'rules', 'alerts.yaml'], { cwd: RULES, encoding: 'utf8' });
    assert.match(check, /SUCCESS: 5 rules found/);
    const test = execFileSync(PROMTOOL, ['test', 'rules', 'alerts.test.yaml'], {
      cwd: RULES,
      encoding: 'utf8',
    });
    assert.match(test, /SUCCESS/);
  });

  it('names only metrics that a running vigil server exports', async () => {
    const rules = readFileSync(join(RULES, 'alerts.yaml'), 'utf8');
    const names = [
      ...new Set([...rules.matchAll(/\b(vigil_[a-z_]+)\b/g)].map((match) => match[1] as string)),
    ];
    assert.ok(names.length >= 4);
    const dir = tempDir();
    const config = join(dir, 'vigil.yaml');
    writeFileSync(
      config,
      `server:\n  proxy_listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  data_dir: ${join(dir, 'data')}\nlog: { format: json }\n`,
    );
    const server = await spawnServer(config);
    try {
      const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
      const exported = new Set([...metrics.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]));
      assert.deepEqual(
        names.filter((name) => !exported.has(name)),
        [],
      );
    } finally {
      await server.stop();
    }
  });
});
