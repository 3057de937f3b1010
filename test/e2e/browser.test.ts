import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { startUp, stopUp } from '../support/demo.ts';
import { tempDir } from '../support/tmp.ts';

const CHROMIUM = process.env.VIGIL_TEST_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;

describe('the vigil up demo in a real browser (headless Chromium)', async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (bash .ci/run does)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const { child, summary } = await startUp(undefined, join(tempDir(), 'data'));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  after(async () => {
    await browser.close();
    await stopUp(child);
  });
  const engineering = summary.apps.find((app) => app.name === 'engineering')?.url ?? '';

  async function logIn(user: string) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(engineering);
    await page.fill('input[name=username]', user);
    await page.fill('input[name=password]', 'demo');
    await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
    await page.waitForURL((url) => url.href.startsWith(summary.proxy), { timeout: 15_000 });
    return page;
  }

  it('alice logs in at the dev IdP and sees the engineering app', async () => {
    const page = await logIn('alice');
    await page.waitForSelector('h1');
    assert.equal(await page.textContent('h1'), 'Engineering dashboard');
    assert.match((await page.textContent('#groups')) ?? '', /engineering/);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-alice-engineering.png'), fullPage: true });
  });

  it('bob logs in and sees the deny page with the reason', async () => {
    const page = await logIn('bob');
    await page.waitForSelector('h1');
    assert.equal(await page.textContent('h1'), 'Access denied');
    assert.match((await page.content()) ?? '', /group-missing/);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-bob-denied.png'), fullPage: true });
  });
});
