// gen-gpp.mjs writes GPP reference vectors (JSON on stdout) made and decoded
// by the IAB Tech Lab's own library, @iabgpp/cmpapi. The Go tests in
// consentmode (gpp_test.go) must agree with every vector.
//
// It also writes, under "layouts", where the library puts the fields that
// consentmode reads in each US section, found by encoding a section with one
// field changed and seeing which bits move. TestGPPLayoutsMatchLibrary
// compares consentmode's table with it.
//
// Deterministic: a seeded PRNG picks every value and every date is fixed.
// Nothing here touches the network.
import * as gpp from '@iabgpp/cmpapi';

const { CompressedBase64UrlEncoder, GppModel, Sections } = gpp;

const SEED = 0x6770702a;

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
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
}

// US sections: usnat (7) and the states (8 and up), by id.
const US = [...Sections.SECTION_ID_NAME_MAP.entries()]
  .filter(([id]) => id >= 7)
  .sort((a, b) => a[0] - b[0]);

const OPT_OUTS = ['SaleOptOut', 'SharingOptOut', 'TargetedAdvertisingOptOut'];
const NOTICES = ['SaleOptOutNotice', 'SharingOptOutNotice', 'TargetedAdvertisingOptOutNotice'];
const READ_FIELDS = [...NOTICES, ...OPT_OUTS];

// has reports whether section name has field.
function has(name, field) {
  const C = Object.values(gpp).find((c) => typeof c === 'function' && c.NAME === name && typeof c.ID === 'number');
  return new C().hasField(field);
}

// coreBits returns the core subsection of a one-section model as bits.
function coreBits(model, name) {
  const sec = model.encodeSection(name).split('.')[0];
  return CompressedBase64UrlEncoder.getInstance().decode(sec);
}

// sectionClass returns the library's class for section id.
function sectionClass(id) {
  return Object.values(gpp).find((c) => typeof c === 'function' && c.ID === id && typeof c.NAME === 'string');
}

// layout finds the bit offset of each 2-bit field consentmode reads.
function layout(id, name) {
  const base = new GppModel();
  base.setFieldValue(name, READ_FIELDS.find((f) => has(name, f)) ?? 'SaleOptOut', 0);
  const baseBits = coreBits(base, name);
  const out = { id, name, version: sectionClass(id).VERSION, gpc: has(name, 'Gpc') };
  for (const f of READ_FIELDS) {
    if (!has(name, f)) {
      out[f] = -1;
      continue;
    }
    const m = new GppModel();
    m.setFieldValue(name, f, 1); // bits "01": the low bit moves
    const bits = coreBits(m, name);
    let diff = -1;
    for (let i = 0; i < Math.min(bits.length, baseBits.length); i++) {
      if (bits[i] !== baseBits[i]) {
        diff = i;
        break;
      }
    }
    out[f] = diff - 1;
  }
  return out;
}

const FIXED_DATE = new Date(Date.UTC(2025, 4, 6, 12, 0, 0));

function setTCF(model, R) {
  const s = 'tcfeuv2';
  model.setFieldValue(s, 'CmpId', R.int(2, 4095));
  model.setFieldValue(s, 'CmpVersion', R.int(0, 4095));
  model.setFieldValue(s, 'VendorListVersion', R.int(1, 4095));
  model.setFieldValue(s, 'PolicyVersion', R.pick([4, 5]));
  model.setFieldValue(s, 'PurposeConsents', Array.from({ length: 24 }, () => R.chance(0.6)));
  const vendors = [755, ...Array.from({ length: R.int(0, 30) }, () => R.int(1, 3000))].filter((v, i) => i > 0 || R.chance(0.7));
  model.setFieldValue(s, 'VendorConsents', [...new Set(vendors)].sort((a, b) => a - b));
  // Last: the library stamps today's date on every other change.
  model.setFieldValue(s, 'Created', FIXED_DATE);
}

function setUSP(model, R) {
  model.setFieldValue('uspv1', 'Notice', R.pick(['Y', 'N', '-']));
  model.setFieldValue('uspv1', 'OptOutSale', R.pick(['Y', 'N', '-']));
  model.setFieldValue('uspv1', 'LspaCovered', R.pick(['Y', 'N', '-']));
}

// setUS sets a US section's opt-outs to v, v+1, v+2 (mod 3) in field order,
// notices at random, and the GPC subsection from gpc (undefined: left out).
function setUS(model, R, name, v, gpc) {
  OPT_OUTS.forEach((f, k) => {
    if (has(name, f)) model.setFieldValue(name, f, (v + k) % 3);
  });
  for (const f of NOTICES) {
    if (has(name, f)) model.setFieldValue(name, f, R.int(0, 2));
  }
  if (has(name, 'Gpc')) {
    model.setFieldValue(name, 'GpcSegmentIncluded', gpc !== undefined);
    if (gpc !== undefined) model.setFieldValue(name, 'Gpc', gpc);
  }
}

// describe records the library's decoding of gpp.
function describe(name, gpp, sid) {
  const m = new GppModel(gpp);
  const sections = m.toObject();
  // toObject leaves out whether the GPC subsection was there; ask for it.
  for (const name of Object.keys(sections)) {
    if ('Gpc' in sections[name]) sections[name].GpcSegmentIncluded = m.getFieldValue(name, 'GpcSegmentIncluded');
  }
  return { name, gpp, sid, sectionIds: m.getSectionIds(), sections };
}

const R = prng(SEED);
const vectors = [];

// Every US section with every opt-out value; the GPC subsection left out,
// set to false or set to true; gpp_sid naming it, empty, or "-1".
for (const [id, name] of US) {
  for (let v = 0; v < 3; v++) {
    const m = new GppModel();
    setUS(m, R, name, v, [undefined, false, true][v]);
    const sid = ['', String(id), '-1'][(id + v) % 3];
    vectors.push(describe(`${name}-optout-${v}`, m.encode(), sid));
  }
}

// usnat version 1 (12 sensitive-data fields instead of 16).
for (let v = 0; v < 3; v++) {
  const m = new GppModel();
  setUS(m, R, 'usnat', v, v === 1 ? true : undefined);
  m.setFieldValue('usnat', 'Version', 1);
  vectors.push(describe(`usnat-v1-optout-${v}`, m.encode(), '7'));
}

// tcfeuv2 and uspv1, alone and together.
for (let k = 0; k < 8; k++) {
  const m = new GppModel();
  if (k % 4 !== 1) setTCF(m, R);
  if (k % 4 !== 0) setUSP(m, R);
  const present = m.getSectionIds();
  const sid = [present.join(','), '2', '6', '-1', ''][k % 5];
  vectors.push(describe(`tcf-usp-${k}`, m.encode(), sid));
}

// Several sections at once, gpp_sid naming some of them (and now and then
// an id that is not present).
for (let k = 0; k < 40; k++) {
  const m = new GppModel();
  const n = R.int(2, 5);
  const chosen = new Set();
  while (chosen.size < n) chosen.add(R.pick([2, 6, ...US.map(([id]) => id)]));
  for (const id of chosen) {
    if (id === 2) setTCF(m, R);
    else if (id === 6) setUSP(m, R);
    else setUS(m, R, Sections.SECTION_ID_NAME_MAP.get(id), R.int(0, 2), R.pick([undefined, false, true]));
  }
  const present = m.getSectionIds();
  let sid;
  switch (k % 5) {
    case 0:
      sid = present.join(',');
      break;
    case 1:
      sid = String(R.pick(present));
      break;
    case 2:
      sid = present.filter(() => R.chance(0.5)).join(',') || '-1';
      break;
    case 3:
      sid = [...present.filter(() => R.chance(0.5)), R.pick([3, 4, 30, 40])].sort((a, b) => a - b).join(',');
      break;
    default:
      sid = '';
  }
  vectors.push(describe(`multi-${String(k).padStart(2, '0')}`, m.encode(), sid));
}

// typical (BenchmarkParseGPP): TCF EU, US Privacy, usnat with the GPC
// subsection and usca; gpp_sid names the two US sections.
{
  const m = new GppModel();
  setTCF(m, R);
  setUSP(m, R);
  setUS(m, R, 'usnat', 2, true);
  setUS(m, R, 'usca', 2, undefined);
  vectors.push(describe('typical', m.encode(), '7,8'));
}

const layouts = US.map(([id, name]) => layout(id, name));

const lines = vectors.map((v) => JSON.stringify(v));
process.stdout.write(
  '{\n' +
    ' "comment": "Generated by testdata/iab/gen-gpp.mjs with @iabgpp/cmpapi; do not edit. Regenerate with testdata/iab/generate.sh. sid is the gpp_sid value sent with gpp.",\n' +
    ' "library": "@iabgpp/cmpapi",\n' +
    ` "seed": ${SEED},\n` +
    ' "layouts": [\n' +
    layouts.map((l) => JSON.stringify(l)).join(',\n') +
    '\n ],\n' +
    ' "vectors": [\n' +
    lines.join(',\n') +
    '\n ]\n}\n',
);
