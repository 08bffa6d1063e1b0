// Cloudflare Worker (or Snippet) for tag gateway style: requests to the
// site's first-party path go to consentgate, with the visitor's region
// from Cloudflare's geolocation (request.cf, else CF-IPCountry) as
// X-Forwarded-CountryRegion and the
// visitor's IP as X-Forwarded-For. Everything else passes to the site's
// origin untouched.
//
// Deploy: a route such as shop.example/metrics/* bound to this Worker
// (or a Snippet with the rule `starts_with(http.request.uri.path,
// "/metrics/")`). consentgate runs with path_prefix: /metrics,
// geo.headers: [X-Forwarded-CountryRegion] and trusted_proxies: the
// Cloudflare ranges (https://www.cloudflare.com/ips/) — and the origin
// accepts only Cloudflare (Authenticated Origin Pulls, or a firewall plus
// the shared header below checked by the proxy in front of consentgate).

// Where consentgate listens, as Cloudflare reaches it.
const GATEWAY = "https://consentgate.origin.shop.example";
// The first-party path served by consentgate (its path_prefix).
const PREFIX = "/metrics/";
// Optional: a header the origin's proxy checks, so that other Cloudflare
// customers' Workers (same source IPs) cannot pose as this zone.
const ORIGIN_AUTH_HEADER = "";
const ORIGIN_AUTH_VALUE = "";

// Headers a visitor could send to choose their own region or address.
const SPOOFABLE = [
  "x-forwarded-countryregion", "cf-ipcountry", "cloudfront-viewer-country",
  "x-appengine-country", "x-gclb-country", "forwarded", "x-real-ip",
];

// regionOf returns "CC" or "CC-SUB" (ISO 3166-1/-2) from Cloudflare's
// request.cf, or "" when Cloudflare does not know (XX, T1 for Tor).
export function regionOf(cf) {
  const cc = (cf && typeof cf.country === "string") ? cf.country.toUpperCase() : "";
  if (!/^[A-Z]{2}$/.test(cc) || cc === "XX" || cc === "T1") {
    return "";
  }
  const sub = (cf && typeof cf.regionCode === "string") ? cf.regionCode.toUpperCase() : "";
  return /^[A-Z0-9]{1,3}$/.test(sub) ? cc + "-" + sub : cc;
}

// gatewayRequest builds the request sent to consentgate.
export function gatewayRequest(request) {
  const url = new URL(request.url);
  const target = new URL(url.pathname + url.search, GATEWAY);
  const headers = new Headers(request.headers);
  for (const h of SPOOFABLE) {
    headers.delete(h);
  }
  // request.cf is Cloudflare's own geolocation; without it (some Snippet
  // plans), the CF-IPCountry header Cloudflare set on the way in.
  const region = regionOf(request.cf && request.cf.country ? request.cf : { country: request.headers.get("CF-IPCountry") });
  if (region) {
    headers.set("X-Forwarded-CountryRegion", region);
  }
  const ip = request.headers.get("CF-Connecting-IP");
  if (ip) {
    headers.set("X-Forwarded-For", ip);
  } else {
    headers.delete("X-Forwarded-For");
  }
  headers.set("X-Forwarded-Host", url.host);
  headers.set("X-Forwarded-Proto", url.protocol.replace(":", ""));
  if (ORIGIN_AUTH_HEADER) {
    headers.set(ORIGIN_AUTH_HEADER, ORIGIN_AUTH_VALUE);
  }
  const init = { method: request.method, headers, redirect: "manual" };
  if (request.method !== "GET" && request.method !== "HEAD") {
    init.body = request.body;
    init.duplex = "half";
  }
  return new Request(target, init);
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (!url.pathname.startsWith(PREFIX)) {
      return fetch(request); // not ours: the site's origin
    }
    return fetch(gatewayRequest(request));
  },
};
