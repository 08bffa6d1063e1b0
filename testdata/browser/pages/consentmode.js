// A tag that sends Google Consent Mode hits the way gtag.js does: a GA4
// /g/collect hit per event carrying gcs and gcd (default all denied, then
// the banner's update), sent with fetch (keepalive, credentials included,
// CORS mode) or navigator.sendBeacon. While analytics_storage is granted
// it keeps its client id in a _ga cookie on the registrable domain, as
// gtag does; like a careless tag it keeps sending that id after a revoke.
(function () {
  const GCD = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_';
  const code = { unset: 1, denied: 2, granted: 3 };
  const def = { ad_storage: 'denied', analytics_storage: 'denied', ad_user_data: 'denied', ad_personalization: 'denied' };
  const upd = { ad_storage: 'unset', analytics_storage: 'unset', ad_user_data: 'unset', ad_personalization: 'unset' };
  const pageID = String(Date.now());
  const rand = () => String(Math.floor(Math.random() * 2147483647));
  let cid = rand() + '.' + Math.floor(Date.now() / 1000);
  const sid = String(Math.floor(Date.now() / 1000));
  let hits = 0;
  window.tagErrors = [];
  window.tagSent = 0;

  const letter = (t) => GCD[16 | (code[def[t]] << 2) | code[upd[t]]]; // gtag's letters carry bit 4
  const effective = (t) => (upd[t] === 'unset' ? def[t] : upd[t]);
  const gcs = () => 'G1' + (effective('ad_storage') === 'granted' ? 1 : 0) + (effective('analytics_storage') === 'granted' ? 1 : 0);
  const gcd = () => '13' + letter('ad_storage') + '3' + letter('analytics_storage') + '3' + letter('ad_user_data') + '2' + letter('ad_personalization') + '5l1';
  const domain = '; Domain=' + location.hostname + '; Path=/; SameSite=Lax';

  function send(en, transport, extra) {
    hits++;
    const q = new URLSearchParams({
      v: '2', tid: 'G-BROWSER1', _p: pageID, cid: cid, sid: sid, _s: String(hits),
      gcs: gcs(), gcd: gcd(), en: en, dl: location.href, dt: document.title,
      'ep.contact': 'jo@example.com',
    });
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    const url = window.GATEWAY + '/g/collect?' + q.toString();
    window.tagSent++;
    if (transport === 'beacon') {
      if (!navigator.sendBeacon(url)) window.tagErrors.push('sendBeacon refused ' + en);
      return Promise.resolve();
    }
    return fetch(url, { method: 'POST', keepalive: true, credentials: 'include', mode: 'cors', body: '' })
      .then((r) => { if (r.status >= 400) window.tagErrors.push(en + ': status ' + r.status); })
      .catch((e) => window.tagErrors.push(en + ': ' + e));
  }

  window.startTag = function () {
    window.tagReady = send('page_view', 'fetch');
    window.onConsentChoice = function (c) {
      upd.analytics_storage = c.analytics ? 'granted' : 'denied';
      for (const t of ['ad_storage', 'ad_user_data', 'ad_personalization']) upd[t] = c.ads ? 'granted' : 'denied';
      if (c.analytics) {
        const m = document.cookie.match(/(?:^|; )_ga=GA1\.1\.([0-9.]+)/);
        if (m) cid = m[1];
        document.cookie = '_ga=GA1.1.' + cid + domain;
      }
      if (c.ads) document.cookie = '_gcl_au=1.1.' + rand() + '.' + sid + domain;
      window.tagChoice = Promise.all([
        send('user_engagement', 'fetch', { gcu: '1' }),
        send('scroll', 'beacon', { 'epn.percent_scrolled': '90' }),
      ]);
    };
    // A purchase as gtag sends it, with the event id the vendors' browser
    // pixels would send too (de-duplication) and an item.
    window.purchase = function (eventID) {
      return send('purchase', 'fetch', {
        'ep.event_id': eventID, 'ep.transaction_id': 'T-' + eventID, 'epn.value': '59.90', cu: 'EUR',
        pr1: 'idSKU-1~nmShirt~pr29.95~qt2',
      });
    };
  };
})();
