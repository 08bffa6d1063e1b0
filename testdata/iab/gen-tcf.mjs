// gen-tcf.mjs writes TCF v2 reference vectors (JSON on stdout) made and
// decoded by the IAB Tech Lab's own library, @iabtechlabtcf/core. The Go
// tests in consentmode (tcf_test.go) must agree with every vector.
//
// Deterministic: a seeded PRNG picks every value and no clock is read. Run it
// through ./generate.sh. Nothing here touches the network: the library needs
// a Global Vendor List to encode, so each vector gets a small fake one built
// in memory with exactly the vendors the vector uses.
import {
  Base64Url,
  GVL,
  PurposeRestriction,
  SegmentIDs,
  TCModel,
  TCString,
  VendorVectorEncoder,
} from '@iabtechlabtcf/core';

const SEED = 0x7c0f2023;
const COUNT = 320;
const GOOGLE = 755;

// mulberry32: small, well-known 32-bit PRNG.
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // inclusive
    chance: (p) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
}

const range = (lo, hi) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
const sorted = (xs) => [...new Set(xs)].sort((a, b) => a - b);

function subset(R, ids, p) {
  return ids.filter(() => R.chance(p));
}

// blocks returns n runs of contiguous ids, each 1..maxLen long, in lo..hi.
function blocks(R, n, lo, hi, maxLen) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const len = R.int(1, maxLen);
    const start = R.int(lo, Math.max(lo, hi - len + 1));
    out.push(...range(start, Math.min(hi, start + len - 1)));
  }
  return sorted(out);
}

const LANGS = [];
GVL.consentLanguages.forEach((l) => {
  if (l.length === 2) LANGS.push(l);
});
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

// fakeGVL builds a vendor list in memory. Every vendor declares purposes
// 1..24 for consent, legitimate interest and flexibly, so the library keeps
// every signal and accepts every restriction type the vector asks for.
function fakeGVL(vendorIds, vendorListVersion, tcfPolicyVersion, language) {
  const item = (id, kind) => ({ id, name: `${kind} ${id}`, description: '', illustrations: [] });
  const purposes = Object.fromEntries(range(1, 24).map((id) => [id, item(id, 'purpose')]));
  const specialPurposes = Object.fromEntries(range(1, 2).map((id) => [id, item(id, 'special purpose')]));
  const specialFeatures = Object.fromEntries(range(1, 12).map((id) => [id, item(id, 'special feature')]));
  const all = range(1, 24);
  const vendors = Object.fromEntries(
    vendorIds.map((id) => [
      id,
      {
        id,
        name: `vendor ${id}`,
        purposes: all,
        legIntPurposes: all,
        flexiblePurposes: all,
        specialPurposes: [1, 2],
        features: [],
        specialFeatures: [1, 2],
        cookieMaxAgeSeconds: 0,
        usesCookies: false,
        deviceStorageDisclosureUrl: '',
        urls: [],
      },
    ]),
  );
  return new GVL(
    {
      gvlSpecificationVersion: 3,
      vendorListVersion,
      tcfPolicyVersion,
      lastUpdated: '2024-01-01T00:00:00Z',
      purposes,
      specialPurposes,
      features: {},
      specialFeatures,
      stacks: {},
      dataCategories: {},
      vendors,
    },
    { language },
  );
}

// vendorSets picks consent and LI vendor sets of one of several shapes, so
// that both encodings (the library picks the shorter) and high ids occur.
function vendorSets(R, i) {
  const shape = i % 9;
  let consents;
  let li;
  switch (shape) {
    case 0: // small dense bit field
      consents = subset(R, range(1, R.int(8, 120)), 0.5);
      li = subset(R, range(1, R.int(8, 60)), 0.3);
      break;
    case 1: // large dense bit field, past Google's id
      consents = subset(R, range(1, R.int(700, 1300)), R.int(4, 8) / 10);
      li = subset(R, range(1, R.int(200, 900)), 0.5);
      break;
    case 2: // a few long runs: range encoding
      consents = blocks(R, R.int(1, 6), 1, 3500, 400);
      li = blocks(R, R.int(0, 3), 1, 3500, 50);
      break;
    case 3: // sparse high ids (3000+): range encoding
      consents = sorted([...blocks(R, R.int(2, 8), 3000, 4200, 5), R.int(1, 50)]);
      li = blocks(R, R.int(1, 4), 2900, 4500, 3);
      break;
    case 4: // near the 16-bit maximum
      consents = sorted([...blocks(R, R.int(1, 4), 65400, 65535, 20), 65535, R.int(1, 1000)]);
      li = sorted([65535, ...blocks(R, R.int(0, 2), 60000, 65535, 3)]);
      break;
    case 5: // no consent at all, some LI
      consents = [];
      li = subset(R, range(1, R.int(1, 40)), 0.4);
      break;
    case 6: // one long run from 1: a single range entry
      consents = range(1, R.int(300, 2000));
      li = [];
      break;
    case 7: // consents as bit field, LI as ranges
      consents = subset(R, range(1, R.int(60, 800)), 0.6);
      li = blocks(R, R.int(1, 3), 1, 4000, 2);
      break;
    default: // scattered singles: many range entries or a long bit field
      consents = sorted(Array.from({ length: R.int(1, 40) }, () => R.int(1, 5000)));
      li = sorted(Array.from({ length: R.int(0, 10) }, () => R.int(1, 5000)));
  }
  // Google's own signals vary independently of the shape.
  const google = R.int(0, 3);
  consents = consents.filter((v) => v !== GOOGLE);
  li = li.filter((v) => v !== GOOGLE);
  if (google === 1 || google === 3) consents.push(GOOGLE);
  if (google === 2 || google === 3) li.push(GOOGLE);
  return { consents: sorted(consents), li: sorted(li) };
}

const SEGMENT_CHOICES = [
  ['core'],
  ['core', 'vendorsDisclosed'],
  ['core', 'vendorsDisclosed'],
  ['core', 'vendorsDisclosed', 'publisherTC'],
  ['core', 'publisherTC'],
  ['core', 'vendorsDisclosed', 'vendorsAllowed', 'publisherTC'],
  ['core', 'vendorsAllowed'],
];

function buildCase(R, i) {
  const policyVersion = R.pick([2, 4, 4, 5, 5]);
  const vlv = R.int(1, 4095);
  const lang = R.pick(LANGS);
  const { consents, li } = vendorSets(R, i);

  // Publisher restrictions: 0..4 entries over runs of vendors, often
  // covering Google, every purpose and type in turn; now and then two
  // types for the same purpose and vendor (a conflict).
  const restrictions = [];
  const nr = i % 5 === 0 ? 0 : R.int(1, 4);
  for (let j = 0; j < nr; j++) {
    const purpose = ((i + 7 * j) % 24) + 1;
    const type = (i + j) % 3;
    let vendors = blocks(R, R.int(1, 3), 1, R.chance(0.3) ? 5000 : 900, R.pick([1, 1, 4, 30]));
    if (R.chance(0.6)) vendors.push(GOOGLE);
    restrictions.push({ purpose, type, vendors: sorted(vendors) });
  }
  if (i % 11 === 3 && restrictions.length > 0) {
    const r0 = restrictions[0];
    restrictions.push({ purpose: r0.purpose, type: (r0.type + 1) % 3, vendors: [GOOGLE, ...r0.vendors.slice(0, 1)] });
  }

  let disclosed = [];
  const disclosedShape = R.int(0, 3);
  if (disclosedShape === 0) disclosed = subset(R, range(1, R.int(10, 900)), 0.7);
  if (disclosedShape === 1) disclosed = blocks(R, R.int(1, 5), 1, 3000, 300);
  if (disclosedShape === 2) disclosed = [...consents, ...li];
  if (R.chance(0.75)) disclosed.push(GOOGLE);
  else disclosed = disclosed.filter((v) => v !== GOOGLE);
  disclosed = sorted(disclosed);
  const allowed = sorted(subset(R, range(1, R.int(5, 300)), 0.5));

  // Every vendor the vector names is in its GVL. Restriction runs get their
  // neighbours too, so the library's range compaction (which joins runs
  // with no GVL vendor between them) keeps them apart.
  const gvlIds = new Set([GOOGLE, ...consents, ...li, ...disclosed, ...allowed]);
  for (const r of restrictions) {
    for (const v of r.vendors) {
      gvlIds.add(v);
      if (v > 1) gvlIds.add(v - 1);
      if (v < 65535) gvlIds.add(v + 1);
    }
  }
  const gvl = fakeGVL(sorted([...gvlIds]), vlv, policyVersion, lang);

  const m = new TCModel(gvl);
  m.cmpId = R.int(2, 4095);
  m.cmpVersion = R.int(0, 4095);
  m.consentScreen = R.int(0, 63);
  m.publisherCountryCode = R.pick(LETTERS) + R.pick(LETTERS);
  m.isServiceSpecific = i % 2 === 0;
  m.useNonStandardTexts = R.chance(0.2);
  m.purposeOneTreatment = R.chance(0.15);
  // 2019-01-01 .. 2026-12-31, whole deciseconds.
  const created = R.int(15463008000, 17982719990);
  m.created = new Date(created * 100);
  m.lastUpdated = new Date((created + R.int(0, 300000000)) * 100);

  // Purposes: random, plus purpose i%24+1 for consent and another for LI,
  // so every purpose 1..24 occurs as both (LI for 1, 3..6 is dropped by
  // the library under TCF 2.2, as the policy says).
  const shape = i % 13;
  const pc = shape === 0 ? range(1, 24) : shape === 1 ? [] : subset(R, range(1, 24), 0.5);
  pc.push((i % 24) + 1);
  m.purposeConsents.set(sorted(pc));
  const pli = shape === 0 ? range(1, 24) : subset(R, range(1, 24), 0.35);
  pli.push(((i * 7 + 3) % 24) + 1);
  m.purposeLegitimateInterests.set(sorted(pli));
  const sf = subset(R, range(1, 12), 0.3);
  sf.push((i % 12) + 1);
  m.specialFeatureOptins.set(sorted(sf));

  m.vendorConsents.set(consents);
  m.vendorLegitimateInterests.set(li);
  for (const r of restrictions) {
    for (const v of r.vendors) m.publisherRestrictions.add(v, new PurposeRestriction(r.purpose, r.type));
  }
  m.vendorsDisclosed.set(disclosed);
  m.vendorsAllowed.set(allowed);
  m.publisherConsents.set(subset(R, range(1, 24), 0.4));
  m.publisherLegitimateInterests.set(subset(R, range(1, 24), 0.3));
  if (R.chance(0.5)) {
    const n = R.int(1, 12);
    m.publisherCustomConsents.set(subset(R, range(1, n), 0.5));
    m.publisherCustomLegitimateInterests.set(subset(R, range(1, n), 0.4));
    m.numCustomPurposes = n;
  }

  const segments = i < SEGMENT_CHOICES.length ? SEGMENT_CHOICES[i] : R.pick(SEGMENT_CHOICES);
  return { name: `random-${String(i).padStart(3, '0')}`, tc: TCString.encode(m, { segments }) };
}

// idList writes a sorted id list compactly: "1-3,7,9-2000" ("" when empty).
function idList(xs) {
  const parts = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
    parts.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

const ids = (vector) => idList(sorted([...vector.values()]));

function isRangeEncoded(vector) {
  // The library's own vendor-vector encoder picks the encoding: bit 16
  // (after MaxVendorId) is IsRangeEncoding.
  return VendorVectorEncoder.encode(vector).charAt(16) === '1';
}

// segmentTypes lists each segment's type as TCString.decode reads it.
function segmentTypes(tc) {
  return tc.split('.').map((seg) => SegmentIDs.ID_TO_KEY[parseInt(Base64Url.decode(seg.charAt(0)).slice(0, 3), 2)]);
}

// describe records what the library decodes from tc.
function describe(name, tc) {
  const d = TCString.decode(tc);
  const pr = d.publisherRestrictions;
  const restrictions = pr.getRestrictions().map((r) => ({
    purpose: r.purposeId,
    type: r.restrictionType,
    vendors: idList(pr.getVendors(r)),
  }));
  // Restriction type per purpose for Google, as the library resolves it
  // (the lowest type when several apply); null when none does.
  const googleRestriction = range(1, 24).map((p) => {
    const t = pr.getRestrictionType(GOOGLE, p);
    return t === undefined ? null : t;
  });
  return {
    name,
    tc,
    segments: segmentTypes(tc),
    version: d.version,
    created: Math.round(d.created.getTime() / 100),
    lastUpdated: Math.round(d.lastUpdated.getTime() / 100),
    cmpId: d.cmpId,
    cmpVersion: d.cmpVersion,
    consentScreen: d.consentScreen,
    consentLanguage: d.consentLanguage,
    vendorListVersion: d.vendorListVersion,
    policyVersion: d.policyVersion,
    isServiceSpecific: d.isServiceSpecific,
    useNonStandardTexts: d.useNonStandardTexts,
    specialFeatureOptins: ids(d.specialFeatureOptins),
    purposeConsents: ids(d.purposeConsents),
    purposeLegitimateInterests: ids(d.purposeLegitimateInterests),
    purposeOneTreatment: d.purposeOneTreatment,
    publisherCountryCode: d.publisherCountryCode,
    vendorConsents: ids(d.vendorConsents),
    vendorConsentsRange: isRangeEncoded(d.vendorConsents),
    vendorLegitimateInterests: ids(d.vendorLegitimateInterests),
    vendorLegitimateInterestsRange: isRangeEncoded(d.vendorLegitimateInterests),
    publisherRestrictions: restrictions,
    googleRestriction,
    vendorsDisclosed: ids(d.vendorsDisclosed),
    vendorsAllowed: ids(d.vendorsAllowed),
    publisherConsents: ids(d.publisherConsents),
    publisherLegitimateInterests: ids(d.publisherLegitimateInterests),
    numCustomPurposes: d.numCustomPurposes,
    publisherCustomConsents: ids(d.publisherCustomConsents),
    publisherCustomLegitimateInterests: ids(d.publisherCustomLegitimateInterests),
  };
}

const R = prng(SEED);
const vectors = [
  // The example string from the IAB's "Consent string and vendor list
  // formats v2" document (docs/spec.md §2.8).
  describe('spec-example', 'COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA'),
];
for (let i = 0; i < COUNT; i++) {
  const c = buildCase(R, i);
  vectors.push(describe(c.name, c.tc));
}
vectors.push(describe('typical', typical(prng(SEED + 1))));

// typical is a real-world-sized string (BenchmarkParseTC): a global TCF 2.3
// string with a few hundred consented vendors in runs (range encoded),
// about a hundred with LI, Google consented, two publisher restrictions and
// a DisclosedVendors segment listing some 900 vendors.
function typical(R) {
  const consents = blocks(R, 28, 1, 1400, 20).filter((v) => v !== GOOGLE);
  consents.push(GOOGLE);
  const li = blocks(R, 12, 1, 1400, 12);
  const disclosed = sorted([GOOGLE, ...subset(R, range(1, 1400), 0.65), ...consents, ...li]);
  const gvl = fakeGVL(disclosed, 120, 5, 'EN');
  const m = new TCModel(gvl);
  m.cmpId = 300;
  m.cmpVersion = 12;
  m.consentScreen = 1;
  m.publisherCountryCode = 'DE';
  m.isServiceSpecific = false;
  m.created = new Date(17400000000 * 100);
  m.lastUpdated = new Date(17400000000 * 100);
  m.purposeConsents.set(range(1, 11));
  m.purposeLegitimateInterests.set([2, 7, 8, 9, 10, 11]);
  m.specialFeatureOptins.set([1]);
  m.vendorConsents.set(sorted(consents));
  m.vendorLegitimateInterests.set(li);
  m.publisherRestrictions.add(GOOGLE, new PurposeRestriction(7, 1));
  for (const v of consents.slice(0, 40)) m.publisherRestrictions.add(v, new PurposeRestriction(1, 0));
  m.vendorsDisclosed.set(disclosed);
  return TCString.encode(m, { segments: ['core', 'vendorsDisclosed'] });
}

// One vector per line: small diffs when the generator changes.
const lines = vectors.map((v) => JSON.stringify(v));
process.stdout.write(
  '{\n' +
    ' "comment": "Generated by testdata/iab/gen-tcf.mjs with @iabtechlabtcf/core; do not edit. Regenerate with testdata/iab/generate.sh. Id lists are written as runs: 1-3,7.",\n' +
    ' "library": "@iabtechlabtcf/core",\n' +
    ` "seed": ${SEED},\n` +
    ' "vectors": [\n' +
    lines.join(',\n') +
    '\n ]\n}\n',
);
