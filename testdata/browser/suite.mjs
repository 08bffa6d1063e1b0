// The browser suite: Debian's Chromium, driven by playwright-core, loads
// pages with a real consent banner (vanilla-cookieconsent) and real tags
// (a gtag-like Consent Mode emitter, and @minimal-analytics/ga4, a
// third-party GA4 client that knows nothing about consent). Their hits go
// through the real consentgate binary on a first-party subdomain into a
// recording upstream. Each scenario asserts what the upstream received and
// that the browser saw no failed request.
//
//   page      http://shop.test:18480          127.0.0.21 (this process)
//   edge      http://metrics.shop.test:18481  127.0.0.22 (this process: the load balancer, sets the geo header)
//   gateway   127.0.0.23:18482                 the binary, GATEWAY_BIN
//   upstream  127.0.0.24:18484                 (this process: records what Google would get, and
//                                             the Meta, Microsoft and TikTok API calls: their endpoint)
//
// Run it with `make test-browser` (testdata/browser/run.sh).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.GATEWAY_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!BIN) {
  console.error('GATEWAY_BIN is not set (run testdata/browser/run.sh)');
  process.exit(2);
}

const ip = { page: '127.0.0.21', edge: '127.0.0.22', gateway: '127.0.0.23', upstream: '127.0.0.24' };
const port = { page: 18480, edge: 18481, gateway: 18482, admin: 18483, upstream: 18484 };
const SITE = `http://shop.test:${port.page}`;
const GATEWAY = `http://metrics.shop.test:${port.edge}`;

// ---- page server --------------------------------------------------------

const files = {
  '/gtag.html': ['pages/gtag.html', 'text/html'],
  '/unaware.html': ['pages/unaware.html', 'text/html'],
  '/banner.js': ['pages/banner.js', 'text/javascript'],
  '/consentmode.js': ['pages/consentmode.js', 'text/javascript'],
  '/vendor/cookieconsent.umd.js': ['node_modules/vanilla-cookieconsent/dist/cookieconsent.umd.js', 'text/javascript'],
  '/vendor/cookieconsent.css': ['node_modules/vanilla-cookieconsent/dist/cookieconsent.css', 'text/css'],
  '/vendor/ga4.js': ['node_modules/@minimal-analytics/ga4/dist/index.js', 'text/javascript'],
};

const pageServer = http.createServer((req, res) => {
  const url = new URL(req.url, SITE);
  if (url.pathname === '/config.js') {
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    res.end(`window.GATEWAY = ${JSON.stringify(GATEWAY)};`);
    return;
  }
  if (url.pathname === '/favicon.ico') {
    res.writeHead(204);
    res.end();
    return;
  }
  const f = files[url.pathname];
  if (!f) {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'Content-Type': f[1] });
  res.end(fs.readFileSync(path.join(here, f[0])));
});

// ---- recording upstream -------------------------------------------------

let received = [];
const upstream = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    received.push({ method: req.method, url: req.url, headers: req.headers, body });
    res.writeHead(204);
    res.end();
  });
});

// ---- edge: the load balancer in front of the gateway --------------------

let region = 'DE';
// dropP makes the edge remove _p from /g/collect hits, as a client that
// leaves it out would send them (server-built and third-party clients).
let dropP = false;
const edge = http.createServer((req, res) => {
  const headers = { ...req.headers };
  delete headers.connection;
  headers['x-forwarded-for'] = req.socket.remoteAddress;
  headers['x-forwarded-countryregion'] = region;
  let reqPath = req.url;
  if (dropP && reqPath.startsWith('/g/collect')) {
    const u = new URL(reqPath, 'http://x');
    u.searchParams.delete('_p');
    reqPath = u.pathname + u.search;
  }
  const up = http.request({ host: ip.gateway, port: port.gateway, localAddress: ip.edge, method: req.method, path: reqPath, headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', (e) => {
    res.writeHead(502);
    res.end(String(e));
  });
  req.pipe(up);
});

// ---- helpers -------------------------------------------------------------

function listen(server, host, p) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, host, resolve);
  });
}

async function until(what, fn, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The vendors (docs/vendors.md), all pointed at the recording upstream.
const vendor = {
  meta: { id: '1234567890123', token: 'browser-meta-token', path: '/v25.0/1234567890123/events', idKey: 'event_id' },
  microsoft: { id: '187000001', token: 'browser-microsoft-token', path: '/v1/187000001/events', idKey: 'eventId' },
  tiktok: { id: 'CBROWSERPIXEL1', token: 'browser-tiktok-token', path: '/open_api/v1.3/event/track/', idKey: 'event_id' },
};

// vendorEvents returns the events vendor v's API received, each with
// the call (headers, parsed JSON body) that carried it.
function vendorEvents(v) {
  return received
    .filter((r) => new URL(r.url, 'http://x').pathname === vendor[v].path)
    .flatMap((r) => {
      const json = JSON.parse(r.body);
      return (json.data || []).map((e) => ({ call: { ...r, json }, e }));
    });
}

// hit is one /g/collect request the upstream received, with its query parsed.
function hits() {
  return received
    .filter((r) => r.url.startsWith('/g/collect'))
    .map((r) => ({ ...r, q: new URL(r.url, 'http://x').searchParams }));
}

function byEvent(list, en) {
  const h = list.filter((x) => x.q.get('en') === en);
  assert.ok(h.length > 0, `no ${en} hit reached the upstream (got ${list.map((x) => x.q.get('en'))})`);
  return h;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'consentgate-browser-'));
const decisions = path.join(tmp, 'decisions.log');
const config = path.join(tmp, 'config.yaml');
fs.writeFileSync(config, `
listen: "${ip.gateway}:${port.gateway}"
admin_listen: "${ip.gateway}:${port.admin}"
upstream: "http://${ip.upstream}:${port.upstream}"
tags: [G-BROWSER1, G-BROWSER2]
cookieless: {secret: "browser-suite-secret-0123456789"}
trusted_proxies: ["${ip.edge}/32"]
geo: {headers: [X-Forwarded-CountryRegion]}
log: {decisions: {output: "${decisions}"}}
timeouts: {drain: 0s}
consent:
  cmp_cookies:
    # vanilla-cookieconsent's cookie: JSON, the accepted categories in
    # config order. Deny-only: it can lower what a hit claims, never raise it.
    - name: cc_cookie
      format: json
      keys: {analytics_storage: categories}
      granted: ['["necessary","analytics"]', '["necessary","analytics","ads"]']
      denied: ['["necessary"]', '["necessary","ads"]']
vendors:
  meta: {enabled: true, id: "${vendor.meta.id}", token: "${vendor.meta.token}", endpoint: "http://${ip.upstream}:${port.upstream}"}
  microsoft: {enabled: true, id: "${vendor.microsoft.id}", token: "${vendor.microsoft.token}", endpoint: "http://${ip.upstream}:${port.upstream}"}
  tiktok: {enabled: true, id: "${vendor.tiktok.id}", token: "${vendor.tiktok.token}", endpoint: "http://${ip.upstream}:${port.upstream}"}
`);

let gateway;
let browser;
let logOffset = 0; // the decision log's size when the scenario started
const failures = [];

async function main() {
  await listen(pageServer, ip.page, port.page);
  await listen(upstream, ip.upstream, port.upstream);
  await listen(edge, ip.edge, port.edge);

  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONSENTGATE_')));
  gateway = spawn(BIN, ['serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let gwLog = '';
  gateway.stderr.on('data', (d) => (gwLog += d));
  gateway.on('exit', (code) => {
    if (code !== null && code !== 0) console.error('gateway exited', code, gwLog);
  });
  await until('the gateway to be ready', () =>
    new Promise((resolve) => {
      http.get({ host: ip.gateway, port: port.gateway, path: '/readyz' }, (r) => {
        r.resume();
        resolve(r.statusCode === 200);
      }).on('error', () => resolve(false));
    }),
  );

  // A fresh profile per launch: Playwright passes its own new
  // --user-data-dir; every scenario also gets a fresh context (no cookies).
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=MAP shop.test ${ip.page}, MAP metrics.shop.test ${ip.edge}`,
    ],
  });

  for (const s of scenarios) {
    const start = Date.now();
    try {
      await run(s);
      console.log(`ok   ${s.name} (${Date.now() - start} ms)`);
    } catch (e) {
      failures.push(s.name);
      console.log(`FAIL ${s.name}\n     ${String(e.stack || e).split('\n').join('\n     ')}`);
    }
  }
}

// run opens a fresh context on the scenario's page, lets the scenario act,
// and checks that the browser saw no failed request.
async function run(s) {
  region = s.region;
  dropP = !!s.dropP;
  received = [];
  logOffset = fs.existsSync(decisions) ? fs.statSync(decisions).size : 0;
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(8000);
  const problems = [];
  const sent = [];
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));
  page.on('request', (r) => {
    if (r.url().startsWith(GATEWAY + '/g/collect')) sent.push(new URL(r.url()).searchParams);
  });
  try {
    await page.goto(SITE + s.page);
    await s.act(page);
    const want = s.hits;
    await until(`${want} hits at the upstream`, () => hits().length >= want);
    const tagErrors = await page.evaluate(() => window.tagErrors || []);
    problems.push(...tagErrors);
    await s.check(hits(), sent, page);
    assert.deepEqual(problems, [], 'the browser saw failed requests');
  } finally {
    await ctx.close();
  }
}

// sentAs returns the browser-side parameters of the hit the upstream got
// (matched by the tag's hit counter _s, or the event name).
function sentAs(sent, h) {
  const s = sent.find((x) => x.get('_s') === h.q.get('_s') && x.get('en') === h.q.get('en'));
  assert.ok(s, `no browser-side hit for ${h.url}`);
  return s;
}

// The common shape of a hit the gateway made cookieless.
function assertCookieless(h, sent, why) {
  const s = sentAs(sent, h);
  assert.notEqual(h.q.get('cid'), s.get('cid'), `${why}: the tag's cid left on a cookieless hit`);
  assert.equal(h.headers.cookie, undefined, `${why}: cookies on a cookieless hit`);
  assert.match(h.headers['x-forwarded-for'] || '', /\.0$/, `${why}: client IP not truncated`);
  assert.ok(!(h.q.get('dl') || '').includes('_gl'), `${why}: _gl left in dl`);
}

function assertNoEmail(h) {
  assert.ok(!decodeURIComponent(h.url).includes('jo@example.com'), `e-mail address reached the upstream: ${h.url}`);
}

// purchaseAfter clicks button on the gtag-style page, waits for the
// hits of the choice, and buys: a GA4 purchase with event id orderID.
async function purchaseAfter(page, button, orderID) {
  await page.evaluate(() => window.tagReady);
  await choose(page, button);
  await page.waitForFunction(() => window.tagChoice);
  await page.evaluate(() => window.tagChoice);
  await page.evaluate((id) => window.purchase(id), orderID);
}

// vendorLines waits for the decision log's lines of this scenario that
// carry vendor calls (only hits whose events map to a vendor do) and
// returns them parsed.
async function vendorLines() {
  return until('a decision log line with vendor calls', () => {
    if (!fs.existsSync(decisions)) return null;
    const text = fs.readFileSync(decisions).subarray(logOffset).toString('utf8');
    const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.vendors);
    return lines.length ? lines : null;
  });
}

async function choose(page, button) {
  await page.getByRole('button', { name: button }).first().click();
}

const scenarios = [
  {
    name: 'gtag-style page, DE: reject all',
    page: '/gtag.html?gclid=Cj0TEST&_gl=1*abc*_ga*MTE.',
    region: 'DE',
    hits: 3,
    act: async (page) => {
      await page.evaluate(() => window.tagReady);
      await choose(page, 'Reject all');
      await page.waitForFunction(() => window.tagChoice);
      await page.evaluate(() => window.tagChoice);
    },
    check: (hs, sent) => {
      for (const h of hs) {
        assertCookieless(h, sent, h.q.get('en'));
        assertNoEmail(h);
        assert.equal(h.headers['x-forwarded-countryregion'], 'DE');
        assert.ok((h.q.get('dl') || '').includes('gclid=Cj0TEST'), 'GA4 keeps click ids in dl');
      }
      const after = byEvent(hs, 'user_engagement')[0];
      assert.equal(after.q.get('gcs'), 'G100');
      assert.equal(after.q.get('gcd'), '13q3q3q2q5l1');
      assert.equal(after.q.get('npa'), '1');
      byEvent(hs, 'scroll'); // sendBeacon arrived
    },
  },
  {
    name: 'gtag-style page, DE: accept all',
    page: '/gtag.html?gclid=Cj0TEST&_gl=1*abc*_ga*MTE.',
    region: 'DE',
    hits: 3,
    act: async (page) => {
      await page.evaluate(() => window.tagReady);
      await choose(page, 'Accept all');
      await page.waitForFunction(() => window.tagChoice);
      await page.evaluate(() => window.tagChoice);
    },
    check: (hs, sent) => {
      assertCookieless(byEvent(hs, 'page_view')[0], sent, 'page_view before the choice');
      for (const en of ['user_engagement', 'scroll']) {
        const h = byEvent(hs, en)[0];
        const s = sentAs(sent, h);
        assert.equal(h.q.get('cid'), s.get('cid'), `${en}: granted hit lost its cid`);
        assert.equal(h.q.get('gcs'), 'G111');
        assert.equal(h.q.get('gcd'), '13r3r3r2r5l1');
        assert.match(h.headers.cookie || '', /(^|; )_ga=GA1\.1\./, `${en}: _ga not forwarded`);
        assert.match(h.headers.cookie || '', /_gcl_au=/, `${en}: _gcl_au not forwarded`);
        assert.ok(!/cc_cookie/.test(h.headers.cookie || ''), 'the CMP cookie is not Google\'s');
        assert.equal(h.headers['x-forwarded-for'], '127.0.0.1');
        assert.equal(h.q.get('npa'), null);
        assertNoEmail(h);
      }
      assert.equal(byEvent(hs, 'user_engagement')[0].q.get('gcu'), '1', 'gcu kept on an honest update');
    },
  },
  {
    name: 'gtag-style page, DE: accept analytics only',
    // The linker carries the client id (_ga, analytics: granted) and a
    // stored click (_gcl_aw, ad_storage: denied): not every part is
    // allowed, so it goes, and its click id comes back as a plain gclid.
    page: '/gtag.html?_gl=1*abc*_ga*MTE.*_gcl_aw*R0NMLjE3MDAwMDAwMDAuQ2owTElOSw..',
    region: 'DE',
    hits: 3,
    act: async (page) => {
      await page.evaluate(() => window.tagReady);
      await choose(page, 'Manage preferences');
      const toggle = page.locator('input.section__toggle[value="analytics"]');
      await toggle.evaluate((el) => el.click()); // the styled switch covers the input
      assert.ok(await toggle.isChecked(), 'analytics switch not on');
      await page.getByRole('button', { name: 'Save preferences' }).click();
      await page.waitForFunction(() => window.tagChoice);
      await page.evaluate(() => window.tagChoice);
    },
    check: (hs, sent) => {
      for (const en of ['user_engagement', 'scroll']) {
        const h = byEvent(hs, en)[0];
        const s = sentAs(sent, h);
        assert.equal(h.q.get('cid'), s.get('cid'), `${en}: analytics granted, cid must stay`);
        assert.equal(h.q.get('gcs'), 'G101');
        assert.equal(h.q.get('npa'), '1');
        assert.match(h.headers.cookie || '', /(^|; )_ga=/);
        assert.ok(!(h.q.get('dl') || '').includes('_gl'), 'ad_storage denied: a linker with a _gcl_ part removed');
        assert.ok((h.q.get('dl') || '').includes('gclid=Cj0LINK'), 'the linker\'s click id kept as gclid');
        assert.equal(h.headers['x-forwarded-for'], '127.0.0.1');
      }
    },
  },
  {
    name: 'gtag-style page, DE: change of mind on the same page',
    page: '/gtag.html',
    region: 'DE',
    hits: 5,
    act: async (page) => {
      await page.evaluate(() => window.tagReady);
      await choose(page, 'Accept all');
      await page.waitForFunction(() => window.tagChoice);
      await page.evaluate(() => window.tagChoice);
      await until('the grant to arrive', () => hits().length >= 3);
      await page.evaluate(() => { window.tagChoice = null; CookieConsent.showPreferences(); });
      await page.locator('.pm').getByRole('button', { name: 'Reject all' }).click();
      await page.waitForFunction(() => window.tagChoice);
      await page.evaluate(() => window.tagChoice);
    },
    check: (hs, sent) => {
      const [grantE, revokeE] = byEvent(hs, 'user_engagement');
      assert.ok(revokeE, 'no hit after the revoke');
      assert.equal(grantE.q.get('cid'), sentAs(sent, grantE).get('cid'));
      assert.match(grantE.headers.cookie || '', /_ga=/);
      // The tag still sends its _ga cookie and the stored cid: the gateway must not.
      assertCookieless(revokeE, sent, 'after the revoke');
      assert.equal(revokeE.q.get('gcs'), 'G100');
      const revokeS = byEvent(hs, 'scroll')[1];
      assertCookieless(revokeS, sent, 'beacon after the revoke');
    },
  },
  {
    // The purchase leaves for Google and, under the same consent, for
    // Meta, Microsoft and TikTok: once each, with the GA4 event id (the
    // id their browser pixels send too, for de-duplication).
    name: 'gtag-style page, DE: accept all, then a purchase reaches each vendor once',
    page: '/gtag.html',
    region: 'DE',
    hits: 4,
    orderID: 'ord-accept-' + Date.now(),
    act: async function (page) {
      await purchaseAfter(page, 'Accept all', this.orderID);
    },
    check: async function (hs) {
      const p = byEvent(hs, 'purchase')[0];
      assert.equal(p.q.get('ep.event_id'), this.orderID, 'the GA4 purchase carries the event id');
      assert.equal(p.q.get('gcs'), 'G111');
      await until('the purchase at each vendor', () => Object.keys(vendor).every((v) => vendorEvents(v).length > 0));
      for (const v of Object.keys(vendor)) {
        const evs = vendorEvents(v);
        assert.equal(evs.length, 1, `${v}: ${evs.length} events, want the purchase once`);
        const { call, e } = evs[0];
        assert.equal(e[vendor[v].idKey], p.q.get('ep.event_id'), `${v}: event id differs from the GA4 hit's`);
        assert.ok(!call.body.includes('jo@example.com'), `${v}: an e-mail address left`);
      }
      assert.equal(vendorEvents('meta')[0].call.json.access_token, vendor.meta.token, 'meta: access_token in the body');
      assert.equal(vendorEvents('meta')[0].e.event_name, 'Purchase');
      assert.equal(vendorEvents('microsoft')[0].call.headers.authorization, `Bearer ${vendor.microsoft.token}`);
      assert.equal(vendorEvents('microsoft')[0].e.adStorageConsent, 'G');
      assert.equal(vendorEvents('tiktok')[0].call.headers['access-token'], vendor.tiktok.token);
      assert.equal(vendorEvents('tiktok')[0].e.event, 'CompletePayment');
      const [line] = await vendorLines();
      assert.deepEqual(line.vendors, { meta: 'send', microsoft: 'send', tiktok: 'send' }, 'the decision log\'s vendor calls');
    },
  },
  {
    // Reject: Meta and TikTok have no cookieless mode and get nothing;
    // Microsoft gets the conversion with adStorageConsent "D", no ids and
    // no user data.
    name: 'gtag-style page, DE: reject all, then a purchase reaches Microsoft only, without ids',
    page: '/gtag.html?msclkid=MSCLKTEST',
    region: 'DE',
    hits: 4,
    orderID: 'ord-reject-' + Date.now(),
    act: async function (page) {
      await purchaseAfter(page, 'Reject all', this.orderID);
    },
    check: async function (hs, sent) {
      const p = byEvent(hs, 'purchase')[0];
      assertCookieless(p, sent, 'purchase');
      assert.equal(p.q.get('gcs'), 'G100');
      assert.equal(p.q.get('ep.event_id'), this.orderID);
      await until('the purchase at Microsoft', () => vendorEvents('microsoft').length > 0);
      const ms = vendorEvents('microsoft');
      assert.equal(ms.length, 1, `microsoft: ${ms.length} events, want the purchase once`);
      const { call, e } = ms[0];
      assert.equal(e.eventId, this.orderID);
      assert.equal(e.adStorageConsent, 'D');
      assert.equal(call.headers.authorization, `Bearer ${vendor.microsoft.token}`);
      for (const k of ['msclkid', 'anonymousId', 'em', 'ph', 'externalId', 'clientIpAddress']) {
        assert.equal(e.userData?.[k], undefined, `microsoft: userData.${k} on a denied purchase`);
      }
      assert.ok(!call.body.includes('MSCLKTEST'), 'microsoft: the click id left (in the page URL?)');
      assert.ok(!call.body.includes('jo@example.com'), 'microsoft: an e-mail address left');
      for (const v of ['meta', 'tiktok']) assert.deepEqual(vendorEvents(v), [], `${v} got an event after "Reject all"`);
      // Blocked, not merely late: the decision says so.
      const [line] = await vendorLines();
      assert.equal(line.vendors.meta, 'block');
      assert.equal(line.vendors.tiktok, 'block');
      assert.match(line.vendors.microsoft, /^send\+no_ids/);
    },
  },
  {
    // Two visitors (here from the same address and browser) must never
    // become one client to Google. The pinned @minimal-analytics/ga4
    // sends a random _p; the edge takes it out (dropP), as clients that
    // leave it out send their hits: each then gets an id of its own.
    name: 'consent-unaware GA4 client, DE: two visitors without _p get different ids',
    page: '/unaware.html',
    region: 'DE',
    dropP: true,
    hits: 2,
    act: async (page) => {
      await until('the first page_view', () => hits().some((h) => h.q.get('en') === 'page_view'));
      const other = await page.context().browser().newContext();
      try {
        const p2 = await other.newPage();
        await p2.goto(SITE + '/unaware.html');
        await until('the second page_view', () => hits().filter((h) => h.q.get('en') === 'page_view').length >= 2);
      } finally {
        await other.close();
      }
    },
    check: (hs, sent) => {
      const pvs = byEvent(hs, 'page_view');
      assert.ok(pvs.length >= 2, 'two page views');
      const [a, b] = pvs;
      assert.equal(a.q.get('_p'), null, 'the hit reached the gateway without _p');
      assert.notEqual(a.q.get('cid'), b.q.get('cid'), 'two visitors share a client id');
      for (const h of [a, b]) {
        assert.ok(!sent.some((x) => x.get('cid') === h.q.get('cid')), 'the tag\'s own cid left on a denied hit');
        const cidTime = Number((h.q.get('cid') || '').split('.')[1]);
        const sidTime = Number(h.q.get('sid') || cidTime);
        const now = Date.now() / 1000 + 5;
        assert.ok(cidTime <= sidTime && sidTime <= now, `implausible times: cid ${h.q.get('cid')} sid ${h.q.get('sid')}`);
        assert.equal(h.headers.cookie, undefined);
      }
    },
  },
  {
    name: 'consent-unaware GA4 client, DE: accept all (deny-only CMP cookie cannot grant)',
    page: '/unaware.html',
    region: 'DE',
    hits: 2,
    act: async (page) => {
      await until('the page_view', () => hits().length >= 1);
      await choose(page, 'Accept all');
    },
    check: (hs, sent) => {
      for (const h of hs) {
        const s = sent.find((x) => x.get('en') === h.q.get('en'));
        assert.ok(s, 'browser-side hit');
        assert.notEqual(h.q.get('cid'), s.get('cid'), 'DE default: cookieless');
        assert.equal(h.q.get('gcs'), 'G100', 'gcs written back');
        assert.equal(h.q.get('gcd'), '13m3m3m2m5l1', 'gcd written back on a hit that had none');
        assert.equal(h.q.get('npa'), '1');
        assert.equal(h.headers.cookie, undefined);
      }
      byEvent(hs, 'consent_choice');
    },
  },
  {
    name: 'consent-unaware GA4 client, US: reject all (the CMP cookie denies)',
    page: '/unaware.html',
    region: 'US',
    hits: 2,
    act: async (page) => {
      await until('the page_view', () => hits().length >= 1);
      await choose(page, 'Reject all');
    },
    check: async (hs, sent) => {
      const pv = byEvent(hs, 'page_view')[0];
      assert.equal(pv.q.get('gcs'), null, 'US, no choice yet: forwarded as sent');
      assert.equal(pv.q.get('cid'), sent.find((x) => x.get('en') === 'page_view').get('cid'));
      const h = byEvent(hs, 'consent_choice')[0];
      assert.notEqual(h.q.get('cid'), sent.find((x) => x.get('en') === 'consent_choice').get('cid'), 'cid left after a reject');
      assert.equal(h.q.get('gcs'), 'G110');
      assert.equal(h.q.get('gcd'), '13n3m3n2n5l1', 'the enforced denial is written back as gcd');
      assert.equal(h.headers.cookie, undefined);
      assert.equal(h.headers['x-forwarded-for'], '127.0.0.0');
      await until('the decision log to name the CMP cookie', () => fs.existsSync(decisions) && /cmp_cookie:cc_cookie/.test(fs.readFileSync(decisions, 'utf8')));
    },
  },
  {
    name: 'consent-unaware GA4 client, US: accept all',
    page: '/unaware.html',
    region: 'US',
    hits: 2,
    act: async (page) => {
      await until('the page_view', () => hits().length >= 1);
      await choose(page, 'Accept all');
    },
    check: (hs, sent) => {
      const h = byEvent(hs, 'consent_choice')[0];
      assert.equal(h.q.get('cid'), sent.find((x) => x.get('en') === 'consent_choice').get('cid'));
      assert.equal(h.q.get('gcs'), null);
      assert.equal(h.q.get('gcd'), null);
      assert.equal(h.headers['x-forwarded-for'], '127.0.0.1');
    },
  },
];

try {
  await main();
} catch (e) {
  console.error(e);
  failures.push('setup');
} finally {
  if (browser) await browser.close();
  if (gateway && gateway.exitCode === null) {
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGTERM');
    await exited;
  }
  pageServer.close();
  upstream.close();
  edge.close();
  edge.closeAllConnections?.();
  fs.rmSync(tmp, { recursive: true, force: true });
}
if (failures.length) {
  console.log(`${failures.length} scenario(s) failed`);
  process.exit(1);
}
console.log('browser suite OK');
