// SPDX-License-Identifier: Apache-2.0
// app.js - the plant's trace web page: five views drawn from tracestore's
// read-only JSON API. No framework and no chart library: the charts are a
// few SVG rectangles and lines, and every string from the API goes into the
// page as text (never as HTML), since serials and details come from the line.
'use strict';

const view = document.getElementById('view');
const conn = document.getElementById('conn');
let stream = null; // the Lines-now EventSource, closed when leaving the view

// el('td', {class: 'num'}, 'text', child...) -> an element; strings are text nodes.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}

async function api(path) {
  const r = await fetch(path, {headers: {Accept: 'application/json'}});
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? '-' : `${(100 * x).toFixed(1)} %`);
const num = (x, d = 3) => (x === null || x === undefined ? '-' : Number(x).toFixed(d));
const when = (t) => (t ? new Date(t).toLocaleString() : '-');
const enc = encodeURIComponent;

function show(title, ...content) {
  view.replaceChildren(el('h1', {}, title), ...content);
}
// Appends to the view, skipping absent parts.
function add(...parts) {
  view.append(...parts.filter((p) => p !== null && p !== undefined));
}
function fail(err) {
  view.append(el('p', {class: 'error', role: 'alert'}, String(err.message || err)));
}
function table(cols, rows, attrs) {
  if (!rows.length) return el('p', attrs || {}, 'None recorded.');
  return el('table', attrs || {},
    el('thead', {}, el('tr', {}, cols.map((c) => el('th', {class: c.num ? 'num' : null, scope: 'col'}, c.title)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, cols.map((c) => {
      const v = c.get(r);
      return el('td', {class: [c.num ? 'num' : '', c.cls ? c.cls(r) : ''].join(' ').trim() || null}, v);
    })))));
}
function card(k, v, id) {
  return el('div', {class: 'card'}, el('div', {class: 'k'}, k), el('div', {class: 'v', 'data-testid': id}, v));
}
// A search form with a labelled input: Enter or the button submits.
function searchForm(label, id, value, onsubmit, extra) {
  const input = el('input', {id, name: id, value: value || '', autocomplete: 'off', required: true});
  return el('form', {role: 'search', onsubmit: (e) => { e.preventDefault(); onsubmit(input.value.trim()); }},
    el('label', {for: id}, label), input, extra || null, el('button', {type: 'submit'}, 'Show'));
}

// ---- Lines now ----------------------------------------------------------
function lineTile(l) {
  const stale = l.stale;
  return el('section', {class: 'tile' + (stale ? ' stale' : ''), 'data-line': `${l.site}/${l.line}`,
                        'aria-label': `line ${l.site}/${l.line}`},
    el('div', {class: 'name'}, `${l.site} / ${l.line}`),
    el('div', {class: 'lot'}, l.lotId ? `lot ${l.lotId} · ${l.product || ''} · fw ${l.firmwareVersion || '-'}` : 'no lot'),
    el('div', {class: 'big'},
      el('span', {class: 'pass'}, el('b', {'data-testid': 'passed'}, l.passed ?? 0), el('small', {}, 'passed')),
      el('span', {class: 'fail'}, el('b', {'data-testid': 'failed'}, l.failed ?? 0), el('small', {}, 'failed')),
      el('span', {}, el('b', {'data-testid': 'in-progress'}, l.inProgress ?? 0), el('small', {}, 'in progress'))),
    el('div', {class: 'meta'},
      `yield ${pct(l.yield)} · first pass ${pct(l.firstPassYield)} · ${num(l.unitsPerHour, 0)} units/h`),
    el('div', {class: 'meta' + (stale ? ' warn' : '')},
      stale ? `stale: no events since ${when(l.lastEventAt)}` : `last event ${when(l.lastEventAt)}`));
}
function drawLines(doc) {
  const tiles = (doc.lines || []).map(lineTile);
  show('Lines now', tiles.length ? el('div', {class: 'tiles'}, tiles) : el('p', {}, 'No line has reported yet.'));
}
async function viewLines() {
  try { drawLines(await api('/v1/lines')); } catch (e) { fail(e); }
  // Server-Sent Events: tracestore pushes a fresh snapshot after it stores
  // events, so the page changes without a reload and without polling.
  stream = new EventSource('/v1/stream');
  stream.addEventListener('lines', (m) => drawLines(JSON.parse(m.data)));
  stream.onopen = () => { conn.textContent = 'live'; };
  stream.onerror = () => { conn.textContent = 'reconnecting…'; };
}

// ---- Lot ----------------------------------------------------------------
function timeline(boards, changeovers) {
  // One mark per board in write order, coloured by the release written.
  const versions = [...new Set(boards.map((b) => b.version).filter(Boolean))];
  const colour = (v) => ['var(--old)', 'var(--new)', 'var(--warn)', 'var(--ok)'][versions.indexOf(v) % 4];
  const n = Math.max(boards.length, 1), w = 1000, bw = w / n;
  const bounds = new Set(changeovers.flatMap((c) => [c.lastOldBoard, c.firstNewBoard]));
  const s = svg('svg', {viewBox: `0 0 ${w} 60`, role: 'img', 'aria-label': 'boards in write order by firmware version'});
  boards.forEach((b, i) => {
    const r = svg('rect', {x: i * bw, y: 10, width: Math.max(bw - 1, 1), height: 30,
                           fill: b.version ? colour(b.version) : '#444'});
    r.append(svg('title', {}, `${b.boardId} ${b.version || 'not written'}${b.passed === false ? ' failed' : ''}`));
    s.append(r);
    if (bounds.has(b.boardId)) {
      // The boundary between two boards: the old one's name ends at it, the new one's starts there.
      const old = changeovers.some((c) => c.lastOldBoard === b.boardId), x = old ? (i + 1) * bw : i * bw;
      s.append(svg('line', {x1: x, x2: x, y1: 4, y2: 46, stroke: '#fff', 'stroke-width': 2}));
      s.append(svg('text', {x: old ? x - 4 : x + 4, y: 58, 'text-anchor': old ? 'end' : 'start'}, b.boardId));
    }
  });
  const legend = el('p', {}, versions.map((v) => el('span', {style: `color:${colour(v)};margin-right:1rem`}, `■ ${v}`)));
  return el('div', {class: 'chart timeline'}, s, legend);
}
function pareto(title, rows) {
  // Bars sorted by count, with the cumulative share as a line.
  rows = [...rows].sort((a, b) => b.count - a.count);
  const total = rows.reduce((t, r) => t + r.count, 0) || 1, max = rows[0] ? rows[0].count : 1;
  const w = 500, h = 220, bw = Math.min((w - 40) / Math.max(rows.length, 1), 90);
  const s = svg('svg', {viewBox: `0 0 ${w} ${h + 60}`, role: 'img', 'aria-label': title});
  let cum = 0, pts = [];
  rows.forEach((r, i) => {
    const bh = (r.count / max) * h, x = 30 + i * bw;
    s.append(svg('rect', {x, y: h - bh + 10, width: bw * 0.8, height: bh, fill: 'var(--bad)'}));
    s.append(svg('text', {x: x + 2, y: h + 25}, r.label));
    s.append(svg('text', {x: x + 2, y: h - bh + 5}, r.count));
    cum += r.count;
    pts.push(`${x + bw * 0.4},${10 + h - (cum / total) * h}`);
  });
  if (pts.length) s.append(svg('polyline', {points: pts.join(' '), fill: 'none', stroke: 'var(--warn)', 'stroke-width': 2}));
  return el('div', {class: 'chart'}, el('h2', {}, title), rows.length ? s : el('p', {}, 'No failures.'));
}
function histogram(m) {
  // Bins from the API, with the order's limits as vertical lines.
  const w = 500, h = 160, lo = Math.min(m.low, ...m.bins.map((b) => b.lo)), hi = Math.max(m.high, ...m.bins.map((b) => b.hi));
  const x = (v) => 20 + ((v - lo) / (hi - lo || 1)) * (w - 40);
  const max = Math.max(1, ...m.bins.map((b) => b.count));
  const s = svg('svg', {viewBox: `0 0 ${w} ${h + 30}`, role: 'img', 'aria-label': `histogram of ${m.name}`});
  for (const b of m.bins) {
    const bh = (b.count / max) * h;
    s.append(svg('rect', {x: x(b.lo), y: h - bh, width: Math.max(x(b.hi) - x(b.lo) - 1, 1), height: bh, fill: 'var(--old)'}));
  }
  for (const [v, label] of [[m.low, 'low'], [m.high, 'high']]) {
    s.append(svg('line', {x1: x(v), x2: x(v), y1: 0, y2: h, stroke: 'var(--bad)', 'stroke-width': 2}));
    s.append(svg('text', {x: label === 'low' ? x(v) + 3 : x(v) - 3, y: h + 20,
                          'text-anchor': label === 'low' ? 'start' : 'end'}, `${label} ${v}`));
  }
  return el('div', {class: 'chart', 'data-measurement': m.name},
    el('h2', {}, `${m.name} [${m.unit || ''}]`), s,
    el('p', {}, `n ${m.count} · mean ${num(m.mean)} · sd ${num(m.stddev)} · min ${num(m.min)} · max ${num(m.max)} · `,
       el('b', {}, `Cpk ${num(m.cpk, 2)}`)));
}
async function viewLot(id) {
  show('Lot', searchForm('Lot id', 'lot-id', id, (v) => { location.hash = `#/lot/${enc(v)}`; }));
  if (!id) return;
  try {
    const [lot, boards, failures, meas] = await Promise.all([
      api(`/v1/lots/${enc(id)}`), api(`/v1/lots/${enc(id)}/boards`),
      api(`/v1/lots/${enc(id)}/failures`), api(`/v1/lots/${enc(id)}/measurements`)]);
    if (!lot) return fail(new Error(`no lot ${id}`));
    const changeovers = lot.changeovers || [];
    add(
      el('div', {class: 'cards'},
        card('units', lot.units, 'lot-units'), card('passed', lot.passed, 'lot-passed'),
        card('failed', lot.failed, 'lot-failed'), card('product', lot.product || '-'),
        card('in progress', lot.inProgress), card('first-pass yield', pct(lot.firstPassYield)),
        card('yield', pct(lot.passed + lot.failed ? lot.passed / (lot.passed + lot.failed) : null))),
      el('h2', {}, 'Units per firmware version'),
      table([{title: 'version', get: (r) => r[0]}, {title: 'units', num: true, get: (r) => r[1]}],
            Object.entries(lot.versions || {})),
      el('h2', {}, 'Changeovers'),
      changeovers.length ? table([
        {title: 'from', get: (c) => c.fromVersion}, {title: 'to', get: (c) => c.toVersion},
        {title: 'last board on old', get: (c) => el('span', {'data-testid': 'last-old'}, c.lastOldBoard)},
        {title: 'first board on new', get: (c) => el('span', {'data-testid': 'first-new'}, c.firstNewBoard)}],
        changeovers, {'data-testid': 'changeovers'}) : el('p', {}, 'No firmware change in this lot.'),
      el('h2', {}, 'Boards in write order'), timeline((boards && boards.boards) || [], changeovers),
      el('div', {class: 'charts'},
        pareto('Failures by step and mode', ((failures && failures.byStepMode) || [])
          .map((f) => ({label: `${f.step}/${f.mode}`, count: f.count}))),
        pareto('Failures by station and site', ((failures && failures.byStation) || [])
          .map((f) => ({label: `${f.station}#${f.site}`, count: f.count})))),
      el('h2', {}, 'Measurements'),
      el('div', {class: 'charts'}, ((meas && meas.measurements) || []).map(histogram)));
  } catch (e) { fail(e); }
}

// ---- Unit ---------------------------------------------------------------
async function viewUnit(q) {
  show('Unit', searchForm('Serial, board id, MAC or device id', 'unit-q', q,
                          (v) => { location.hash = `#/unit/${enc(v)}`; }));
  document.getElementById('unit-q').focus();
  if (!q) return;
  try {
    const u = await api(`/v1/units/${enc(q)}`);
    if (!u) return fail(new Error(`no unit matches ${q}`));
    const fw = u.firmware || {};
    add(
      el('div', {class: 'cards'},
        card('serial', u.serial || '-', 'unit-serial'), card('board', u.boardId || '-'),
        card('lot', el('a', {href: `#/lot/${enc(u.lot || '')}`}, u.lot || '-')),
        card('firmware', fw.version || '-', 'unit-firmware'),
        card('outcome', u.passed === true ? 'passed' : u.passed === false ? 'failed' : 'in progress', 'unit-outcome')),
      el('h2', {}, 'Firmware'),
      table([{title: 'version', get: (r) => r.version}, {title: 'sha256', get: (r) => r.sha256},
             {title: 'verified', get: (r) => (r.verified ? `read back: ${r.verifiedBy || 'SHA-256'} matches` : 'NOT verified'),
              cls: (r) => (r.verified ? 'pass' : 'fail')},
             {title: 'station', get: (r) => r.station || '-'}, {title: 'written', get: (r) => when(r.writtenAt)}], [fw]),
      u.fieldFirmware ? el('p', {}, `In the field now: ${u.fieldFirmware.version} (reported ${when(u.fieldFirmware.reportedAt)})`) : null,
      el('h2', {}, 'Identity'),
      (u.identities || []).length ? table([{title: 'serial', get: (i) => i.serial}, {title: 'MACs', get: (i) => (i.macs || []).join(' ')},
                          {title: 'device id', get: (i) => i.deviceId}, {title: 'certificate sha256', get: (i) => i.certificateSha256},
                          {title: 'time', get: (i) => when(i.time)}], u.identities) : el('p', {}, 'Not provisioned.'),
      el('h2', {}, 'Measurements'),
      table([{title: 'name', get: (m) => m.name}, {title: 'value', num: true, get: (m) => num(m.value, 4)},
             {title: 'low', num: true, get: (m) => m.low}, {title: 'high', num: true, get: (m) => m.high},
             {title: 'unit', get: (m) => m.unit}, {title: 'result', get: (m) => (m.passed ? 'pass' : 'FAIL'),
              cls: (m) => (m.passed ? 'pass' : 'fail')}, {title: 'station', get: (m) => m.station || '-'}],
            u.measurements || [], {'data-testid': 'measurements'}),
      el('h2', {}, 'Calibration'),
      table([{title: 'offset', num: true, get: (c) => c.offset}, {title: 'gain', num: true, get: (c) => c.gain},
             {title: 'residual', num: true, get: (c) => c.residual}, {title: 'station', get: (c) => c.station || '-'}],
            u.calibrations || []),
      el('h2', {}, 'Lock'),
      table([{title: 'debug port', get: (l) => (l.verified ? 'locked, verified' : 'NOT verified'), cls: (l) => (l.verified ? 'pass' : 'fail')},
             {title: 'station', get: (l) => l.station || '-'}, {title: 'time', get: (l) => when(l.time)}], u.locks || []),
      el('h2', {}, 'Failures'),
      table([{title: 'step', get: (f) => f.step}, {title: 'mode', get: (f) => f.failureMode},
             {title: 'detail', get: (f) => f.detail}, {title: 'station', get: (f) => `${f.station || '-'}#${f.stationSite ?? 0}`},
             {title: 'time', get: (f) => when(f.time)}], u.failures || []));
  } catch (e) { fail(e); }
}

// ---- Recall scope -------------------------------------------------------
async function viewRecall(version, product) {
  const prod = el('input', {id: 'recall-product', value: product || '', 'aria-label': 'product (optional)', placeholder: 'product (optional)'});
  show('Recall scope', searchForm('Firmware version', 'recall-version', version, (v) => {
    location.hash = `#/recall/${enc(v)}${prod.value.trim() ? `/${enc(prod.value.trim())}` : ''}`;
  }, prod));
  if (!version) return;
  const q = `/v1/firmware/${enc(version)}/units${product ? `?product=${enc(product)}` : ''}`;
  try {
    const r = await api(q);
    const units = (r && r.units) || [];
    add(el('p', {}, `${units.length} units carry ${version}. `,
      el('a', {href: q + (product ? '&' : '?') + 'format=csv', download: `recall-${version}.csv`}, 'Download CSV')),
      table([{title: 'serial', get: (u) => u.serial}, {title: 'board', get: (u) => u.boardId},
             {title: 'lot', get: (u) => el('a', {href: `#/lot/${enc(u.lot)}`}, u.lot)},
             {title: 'product', get: (u) => u.product || '-'}], units, {'data-testid': 'recall'}));
  } catch (e) { fail(e); }
}

// ---- Audit --------------------------------------------------------------
async function viewAudit() {
  show('Audit');
  try {
    const a = await api('/v1/audit');
    const f = (a && a.findings) || [];
    add(el('p', {class: f.length ? 'warn' : 'pass'}, f.length ? `${f.length} findings` : 'Consistent: no findings.'),
      table([{title: 'kind', get: (x) => x.kind},
             {title: 'detail', get: ({kind, ...rest}) => Object.entries(rest).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(' · ')}], f));
  } catch (e) { fail(e); }
}

// ---- Router -------------------------------------------------------------
function route() {
  if (stream) { stream.close(); stream = null; conn.textContent = ''; }
  const [page, a, b] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  for (const n of document.querySelectorAll('nav a'))
    n.classList.toggle('active', n.dataset.nav === (page || 'lines'));
  if (page === 'lot') return viewLot(a);
  if (page === 'unit') return viewUnit(a);
  if (page === 'recall') return viewRecall(a, b);
  if (page === 'audit') return viewAudit();
  return viewLines();
}
window.addEventListener('hashchange', route);
route();
