// node --test deploy/edge/cloudflare/worker.test.mjs (make test-deploy):
// the Worker's request to consentgate, with fetch stubbed.
import { test } from "node:test";
import assert from "node:assert/strict";
import worker, { regionOf } from "./worker.js";

function withCF(req, cf) {
  Object.defineProperty(req, "cf", { value: cf });
  return req;
}

async function sent(request) {
  let got;
  globalThis.fetch = async (r) => { got = r; return new Response(null, { status: 204 }); };
  const resp = await worker.fetch(request);
  assert.equal(resp.status, 204);
  return got;
}

test("regions from request.cf", () => {
  assert.equal(regionOf({ country: "DE" }), "DE");
  assert.equal(regionOf({ country: "US", regionCode: "CA" }), "US-CA");
  assert.equal(regionOf({ country: "XX" }), "");
  assert.equal(regionOf({ country: "T1" }), "");
  assert.equal(regionOf({ country: "D" }), "");
  assert.equal(regionOf(undefined), "");
});

test("hits go to consentgate with Cloudflare's region, spoofed headers dropped", async () => {
  const req = withCF(new Request("https://shop.example/metrics/g/collect?v=2&tid=G-1&gcs=G100", {
    headers: {
      "CF-Connecting-IP": "203.0.113.9",
      "X-Forwarded-CountryRegion": "US",
      "X-Forwarded-For": "198.51.100.1",
      "CF-IPCountry": "US",
      "Cookie": "_ga=GA1.1.1.2",
    },
  }), { country: "DE", regionCode: "BE" });
  const r = await sent(req);
  assert.equal(r.url, "https://consentgate.origin.shop.example/metrics/g/collect?v=2&tid=G-1&gcs=G100");
  assert.equal(r.headers.get("X-Forwarded-CountryRegion"), "DE-BE");
  assert.equal(r.headers.get("X-Forwarded-For"), "203.0.113.9");
  assert.equal(r.headers.get("CF-IPCountry"), null);
  assert.equal(r.headers.get("X-Forwarded-Host"), "shop.example");
  assert.equal(r.headers.get("Cookie"), "_ga=GA1.1.1.2"); // consentgate decides about cookies
});

test("unknown country: no geo header at all (consentgate applies unknown_region)", async () => {
  const req = withCF(new Request("https://shop.example/metrics/g/collect?v=2", {
    headers: { "X-Forwarded-CountryRegion": "US" },
  }), { country: "XX" });
  const r = await sent(req);
  assert.equal(r.headers.get("X-Forwarded-CountryRegion"), null);
  assert.equal(r.headers.get("X-Forwarded-For"), null);
});

test("without request.cf: Cloudflare's CF-IPCountry header", async () => {
  const r = await sent(new Request("https://shop.example/metrics/g/collect?v=2", { headers: { "CF-IPCountry": "AT" } }));
  assert.equal(r.headers.get("X-Forwarded-CountryRegion"), "AT");
  assert.equal(r.headers.get("CF-IPCountry"), null);
});

test("POST bodies pass through", async () => {
  const req = withCF(new Request("https://shop.example/metrics/g/collect?v=2", { method: "POST", body: "en=page_view" }), { country: "FR" });
  const r = await sent(req);
  assert.equal(r.method, "POST");
  assert.equal(await r.text(), "en=page_view");
});

test("other paths go to the site's origin unchanged", async () => {
  const req = withCF(new Request("https://shop.example/cart", { headers: { "X-Forwarded-CountryRegion": "US" } }), { country: "DE" });
  const r = await sent(req);
  assert.equal(r, req);
});
