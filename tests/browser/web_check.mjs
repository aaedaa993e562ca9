// SPDX-License-Identifier: Apache-2.0
// web_check.mjs - checks tracestore's web page in a real browser (Debian's
// chromium, driven by playwright-core; no browser download). Run by
// tests/integration/it_web.sh, which starts the stack and passes what the
// page must show in environment variables:
//   node web_check.mjs live    TS_URL LINE_KEY READY_FILE FINAL_PASSED_FILE SHOT_DIR
//     "Lines now" is open (READY_FILE written once its live feed is) while a lot runs: the tile's passed count must rise
//     without a reload and end equal to the count the harness writes to
//     FINAL_PASSED_FILE once the lot is over.
//   node web_check.mjs pages   TS_URL LOT_ID LAST_OLD FIRST_NEW SERIAL SERIAL_VERSION MEASUREMENTS SHOT_DIR
//     the lot page names the changeover's boundary boards, a serial search
//     shows its firmware and every measurement, and each page is screenshot.
// Exit 0 when every check holds; otherwise 1 with the reason.
import {chromium} from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (v === undefined || v === '') { console.error(`web_check: ${k} is not set`); process.exit(2); }
  return v;
};
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exitCode = 1; throw new Error(msg); };
const ok = (msg) => console.log(`ok: ${msg}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run'],
});
const base = env('TS_URL');
const shots = env('SHOT_DIR');

async function page(width = 1366, height = 768) {
  const p = await (await browser.newContext({viewport: {width, height}})).newPage();
  p.on('pageerror', (e) => fail(`page error: ${e.message}`));
  return p;
}

async function live() {
  const key = env('LINE_KEY'), finalFile = env('FINAL_PASSED_FILE');
  const {existsSync, readFileSync} = await import('node:fs');
  let final = null;
  const p = await page(1920, 1080);
  await p.goto(`${base}/`);
  // A marker that a reload would wipe.
  await p.evaluate(() => { window.__noReload = true; });
  // The live feed is open: tell the harness it may start the lot.
  await p.locator('#conn', {hasText: 'live'}).waitFor({timeout: 30000});
  const {writeFileSync} = await import('node:fs');
  writeFileSync(env('READY_FILE'), 'ready\n');
  const tile = p.locator(`[data-line="${key}"] [data-testid=passed]`);
  const seen = new Set();
  const deadline = Date.now() + Number(process.env.LIVE_TIMEOUT_MS || 120000);
  let last = -1;
  while (Date.now() < deadline) {
    if (final === null && existsSync(finalFile)) final = Number(readFileSync(finalFile, 'utf8'));
    if (await tile.count()) {
      last = Number(await tile.first().textContent());
      seen.add(last);
      if (final !== null && last === final) break;
    }
    await p.waitForTimeout(100);
  }
  await p.screenshot({path: `${shots}/lines-now.png`});
  if (last !== final) fail(`tile ${key} shows ${last} passed, expected ${final}`);
  if (!(await p.evaluate(() => window.__noReload === true))) fail('the page was reloaded');
  const rising = [...seen].sort((a, b) => a - b);
  if (rising.length < 3) fail(`the passed count did not rise live (values seen: ${rising.join(', ')})`);
  ok(`"Lines now" tile ${key} rose live through ${rising.length} values to ${final} without a reload`);
}

let current = null; // the page in use, whose text a failure prints

async function pages() {
  const lot = env('LOT_ID'), lastOld = env('LAST_OLD'), firstNew = env('FIRST_NEW');
  const serial = env('SERIAL'), version = env('SERIAL_VERSION');
  const names = env('MEASUREMENTS').split(',').filter(Boolean);
  const p = current = await page();

  await p.goto(`${base}/#/lot/${encodeURIComponent(lot)}`);
  await p.locator('[data-testid=changeovers]').waitFor({timeout: 15000});
  const lo = (await p.locator('[data-testid=last-old]').first().textContent()).trim();
  const fn = (await p.locator('[data-testid=first-new]').first().textContent()).trim();
  if (lo !== lastOld || fn !== firstNew) fail(`lot page boundary ${lo} -> ${fn}, tracestore lot says ${lastOld} -> ${firstNew}`);
  await p.screenshot({path: `${shots}/lot.png`, fullPage: true});
  ok(`lot page names the boundary boards ${lo} -> ${fn}`);

  // The search works from the keyboard: focus is in the box, Enter submits.
  await p.goto(`${base}/#/unit`);
  await p.locator('#unit-q').waitFor();
  await p.keyboard.type(serial);
  await p.keyboard.press('Enter');
  await p.locator('[data-testid=unit-firmware]').waitFor({timeout: 15000});
  const fw = (await p.locator('[data-testid=unit-firmware]').textContent()).trim();
  if (fw !== version) fail(`unit ${serial} shows firmware ${fw}, expected ${version}`);
  const shown = await p.locator('[data-testid=measurements] tbody tr td:first-child').allTextContents();
  for (const n of names) if (!shown.includes(n)) fail(`unit ${serial} does not show measurement ${n} (shows ${shown.join(', ')})`);
  if (shown.length !== names.length) fail(`unit ${serial} shows ${shown.length} measurements, expected ${names.length}`);
  await p.screenshot({path: `${shots}/unit.png`, fullPage: true});
  ok(`serial search shows firmware ${fw} and all ${names.length} measurements`);

  await p.goto(`${base}/#/recall/${encodeURIComponent(version)}`);
  await p.locator('[data-testid=recall]').waitFor({timeout: 15000});
  await p.screenshot({path: `${shots}/recall.png`, fullPage: true});
  await p.goto(`${base}/#/audit`);
  await p.locator('main p').first().waitFor({timeout: 15000});
  await p.screenshot({path: `${shots}/audit.png`, fullPage: true});
  ok('recall and audit pages drawn');
}

try {
  const mode = process.argv[2];
  if (mode === 'live') await live();
  else if (mode === 'pages') await pages();
  else { console.error('usage: web_check.mjs live|pages'); process.exitCode = 2; }
} catch (e) {
  if (!process.exitCode) { console.error(`FAIL: ${e.message}`); process.exitCode = 1; }
  if (current) console.error(`page ${current.url()} shows:\n${await current.locator('main').innerText().catch(() => '?')}`);
} finally {
  await browser.close();
}
