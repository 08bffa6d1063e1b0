// node --test deploy/edge/cloudfront/viewer-request.test.mjs (make test-deploy):
// the CloudFront Function on synthetic viewer-request events.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";

// CloudFront Functions are plain scripts with a global handler().
const ctx = {};
vm.runInNewContext(readFileSync(new URL("./viewer-request.js", import.meta.url), "utf8"), ctx);

function run(headers) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = { value: v };
  return ctx.handler({ request: { method: "GET", uri: "/metrics/g/collect", headers: h } }).headers;
}

test("country and region from CloudFront", () => {
  assert.equal(run({ "CloudFront-Viewer-Country": "DE" })["x-forwarded-countryregion"].value, "DE");
  assert.equal(run({ "CloudFront-Viewer-Country": "US", "CloudFront-Viewer-Country-Region": "CA" })["x-forwarded-countryregion"].value, "US-CA");
});

test("a visitor's own header never survives", () => {
  const h = run({ "X-Forwarded-CountryRegion": "US", "CF-IPCountry": "US", "CloudFront-Viewer-Country": "FR" });
  assert.equal(h["x-forwarded-countryregion"].value, "FR");
  assert.equal(h["cf-ipcountry"], undefined);
  assert.equal(run({ "X-Forwarded-CountryRegion": "US" })["x-forwarded-countryregion"], undefined);
});

test("the origin request policy forwards what the function and consentgate need", () => {
  const p = JSON.parse(readFileSync(new URL("./origin-request-policy.json", import.meta.url), "utf8")).OriginRequestPolicyConfig;
  const items = p.HeadersConfig.Headers.Items;
  assert.equal(p.HeadersConfig.Headers.Quantity, items.length);
  for (const h of ["CloudFront-Viewer-Country", "CloudFront-Viewer-Country-Region", "X-Forwarded-CountryRegion"]) {
    assert.ok(items.includes(h), h);
  }
  assert.equal(p.QueryStringsConfig.QueryStringBehavior, "all");
});
