// The status page's script: asks GET /api/status every 1.5 s and draws the
// figures with DOM calls only (textContent, never innerHTML: group names
// come from the file system). The API key, if any, stays in this tab's
// sessionStorage and goes out only to this server.
'use strict';

const KEY = 'metricstream-status-key';
const REFRESH_MS = 1500;
const NAMES = {
  json: 'JSON (POST /metrics)',
  remote_write: 'Prometheus remote_write',
  influx: 'InfluxDB line protocol',
  otlp: 'OpenTelemetry (OTLP/HTTP)',
};
const LIMITS = {
  disk_full: 'until the disk is full',
  retention_bytes: 'until size retention deletes unread records',
  retention_time: 'until time retention deletes unread records',
};

const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function num(n, digits) {
  if (n === null || n === undefined) return '—';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits || 0 });
}

function bytes(b) {
  if (b === null || b === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
}

function duration(s) {
  if (s === null || s === undefined) return '—';
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  if (s < 3600) return (s / 60).toFixed(1) + ' min';
  if (s < 172800) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' days';
}

// A sparkline as inline SVG; its text alternative says what it shows.
function sparkline(values, what) {
  const ns = 'http://www.w3.org/2000/svg';
  const w = 120;
  const h = 28;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', w);
  svg.setAttribute('height', h);
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('role', 'img');
  const max = Math.max(0, ...values);
  const min = values.length ? Math.min(...values) : 0;
  const last = values.length ? values[values.length - 1] : 0;
  const label = values.length
    ? `${what}: ${values.length} points, from ${num(min, 1)} to ${num(max, 1)}, last ${num(last, 1)}`
    : `${what}: no history yet`;
  svg.setAttribute('aria-label', label);
  const title = document.createElementNS(ns, 'title');
  title.textContent = label;
  svg.appendChild(title);
  if (values.length > 1) {
    const step = w / (values.length - 1);
    const pts = values.map((v, i) => {
      const y = max > 0 ? h - 2 - (v / max) * (h - 4) : h - 2;
      return `${(i * step).toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    svg.appendChild(line);
  }
  return svg;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function row(cells, id) {
  const tr = el('tr', null, id ? { id } : {});
  cells.forEach((c, i) => {
    const cell = i === 0 ? el('th', null, { scope: 'row' }) : el('td');
    if (c && typeof c === 'object' && c.nodeType) cell.appendChild(c);
    else if (c && typeof c === 'object') {
      cell.textContent = c.text;
      if (c.id) cell.id = c.id;
      if (c.cls) cell.className = c.cls;
    } else cell.textContent = c;
    tr.appendChild(cell);
  });
  return tr;
}

function renderProtocols(s) {
  $('in-note').textContent =
    `Rates now: the average over the last ${s.rate_window_seconds} s; ` +
    `sparklines: one point per ${s.sparkline_step_seconds} s.`;
  fill($('protocols').tBodies[0], s.protocols.map((p) => {
    const refusals = p.refusals.length
      ? p.refusals.map((r) => `${r.status}: ${num(r.requests)}`).join(', ')
      : 'none';
    return row([
      NAMES[p.name] || p.name,
      { text: num(p.samples_per_second, 1), id: `rate-${p.name}-samples` },
      { text: num(p.requests_per_second, 1), id: `rate-${p.name}-requests` },
      sparkline(p.samples_history, `${NAMES[p.name] || p.name} samples per second`),
      num(p.samples_total),
      num(p.samples_refused),
      { text: refusals, id: `refused-${p.name}` },
    ], `protocol-${p.name}`);
  }));
}

function renderPartitions(s) {
  const r = s.retention;
  const parts = [];
  parts.push(r.bytes_per_partition ? `${bytes(r.bytes_per_partition)} per partition` : 'no size limit');
  parts.push(r.seconds ? duration(r.seconds) : 'no time limit');
  $('retention').textContent = s.queue === 'embedded'
    ? `Retention: ${parts.join(', ')}; whole segments of ${bytes(r.segment_bytes)} are deleted.`
    : '';
  // With Kafka the records are on the brokers' disks: unknown here, not 0.
  fill($('partitions').tBodies[0], s.partitions.map((p) => row([
    String(p.partition),
    num(p.first_offset),
    num(p.last_offset),
    { text: num(p.records), id: `partition-${p.partition}-records` },
    p.bytes_on_disk === null ? 'unknown (on the brokers)' : bytes(p.bytes_on_disk),
    p.oldest_record_age_seconds === null && p.records > 0
      ? 'unknown (see the note above)' : duration(p.oldest_record_age_seconds),
  ])));
}

function renderGroups(s) {
  const box = $('groups');
  if (!s.groups.length) {
    box.replaceChildren(el('p', s.queue === 'embedded'
      ? 'No consumer group has started yet.'
      : 'No consumer group of this topic found (see the note above).',
      { class: 'muted' }));
    return;
  }
  const blocks = [];
  for (const g of s.groups) {
    const sec = el('section', null, { 'aria-label': `group ${g.name}` });
    sec.appendChild(el('h3', `Group ${g.name}`));
    const p = el('p');
    p.append('Lag: ');
    p.appendChild(el('strong', num(g.lag_records), { id: `group-${g.name}-lag` }));
    p.append(' records, oldest waiting ');
    p.appendChild(el('strong', g.lag_seconds === null ? 'unknown' : duration(g.lag_seconds),
      { id: `group-${g.name}-lag-seconds` }));
    p.append('. Members alive: ');
    const known = g.members_alive !== null;
    p.appendChild(el('strong', known ? String(g.members_alive) : 'unknown (the broker did not list groups)', {
      id: `group-${g.name}-members`,
      class: !known ? 'muted' : g.members_alive > 0 ? 'ok' : 'bad',
    }));
    if (g.state) p.append(` (state: ${g.state})`);
    if (g.members_dead) p.append(` (${g.members_dead} dead, removed at the next rebalance)`);
    sec.appendChild(p);
    const table = el('table');
    const head = el('thead');
    const hr = el('tr');
    for (const h of ['Partition', 'Committed', 'End', 'Lag (records)', 'Oldest waiting', 'Reader alive']) {
      hr.appendChild(el('th', h, { scope: 'col' }));
    }
    head.appendChild(hr);
    table.appendChild(head);
    const body = el('tbody');
    fill(body, g.partitions.map((q) => row([
      String(q.partition),
      q.committed === null ? 'no commit yet' : num(q.committed),
      num(q.end_offset),
      q.lag_records === null ? 'unknown (no commit yet)' : num(q.lag_records)
        + (q.deleted_unread ? ` (${num(q.deleted_unread)} deleted unread)` : ''),
      q.lag_seconds === null && q.lag_records ? 'unknown (see the note above)' : duration(q.lag_seconds),
      q.owner_alive === null
        ? { text: 'unknown', cls: 'muted' }
        : { text: q.owner_alive ? 'yes' : 'no', cls: q.owner_alive ? 'ok' : 'muted' },
    ])));
    table.appendChild(body);
    const wrap = el('div', null, { class: 'scroll' });
    wrap.appendChild(table);
    sec.appendChild(wrap);
    blocks.push(sec);
  }
  box.replaceChildren(...blocks);
}

function renderDisk(s) {
  const d = s.disk;
  $('disk-dir').textContent = d.data_dir;
  $('disk-used').textContent = bytes(d.data_dir_bytes);
  $('disk-log').textContent = d.log_bytes === null ? 'the log is on the Kafka brokers' : bytes(d.log_bytes);
  $('disk-free').textContent = `${bytes(d.free_bytes)} of ${bytes(d.total_bytes)}`;
  $('disk-rate').textContent =
    `${bytes(Math.round(d.write_bytes_per_second))}/s (over the last ${Math.round(d.write_window_seconds)} s)`;
  let outage;
  if (s.queue !== 'embedded') outage = 'not this disk: the queue is Kafka';
  else if (d.outage_hours === null) outage = 'no limit at the current rate: nothing is being written';
  else outage = `${num(d.outage_hours, 1)} hours ${LIMITS[d.outage_limit] || ''}`;
  $('disk-outage').textContent = outage;
}

function renderDead(s) {
  $('dead-none').hidden = s.dead_letters.length > 0;
  $('dead').hidden = s.dead_letters.length === 0;
  fill($('dead').tBodies[0], s.dead_letters.map((d) => row([d.group, num(d.samples), bytes(d.bytes)])));
}

// Kafka: whether the brokers answer the page's questions, and since when
// they do not (the figures shown are then the last ones read).
function renderKafka(s) {
  const k = s.kafka;
  const box = $('broker');
  if (!k) { box.hidden = true; return; }
  box.hidden = false;
  if (k.answering) {
    box.className = 'ok';
    box.textContent = `Kafka broker answering; figures read at ${new Date(k.figures_at_ms).toLocaleTimeString()}.`;
  } else {
    box.className = 'bad';
    const since = k.not_answering_since_ms === null ? '' : ` since ${new Date(k.not_answering_since_ms).toLocaleTimeString()}`;
    const shown = k.figures_at_ms === null
      ? 'No figures read yet.'
      : `Partitions and groups below are as read at ${new Date(k.figures_at_ms).toLocaleTimeString()}.`;
    box.textContent = `Kafka broker not answering${since} (${k.error || 'no answer'}). ${shown}`;
  }
}

function render(s) {
  const notes = s.notes.length ? ' ' + s.notes.join(' ') : '';
  renderKafka(s);
  $('server').textContent =
    `Version ${s.version}, up ${duration(s.uptime_seconds)}; queue: ${s.queue === 'embedded' ? 'embedded log' : 'Kafka'}, ack: ${s.ack}.${notes}`;
  renderProtocols(s);
  renderPartitions(s);
  renderGroups(s);
  renderDisk(s);
  renderDead(s);
  $('data').hidden = false;
  $('updated').textContent = new Date(s.generated_at_ms).toLocaleTimeString();
}

function showMessage(text) {
  $('message').textContent = text;
  $('message').hidden = false;
}

// Refused or unreachable: no stale figures stay on the page.
function withhold(text) {
  showMessage(text);
  $('data').hidden = true;
}

async function refresh() {
  const key = sessionStorage.getItem(KEY);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  try {
    const resp = await fetch('/api/status', { headers, cache: 'no-store' });
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401) {
      withhold(`401 Unauthorized: ${body.error || 'an API key is required'}. ` +
        (key ? 'The key given is not one of the server\'s; enter another.' : 'Enter an API key above.'));
    } else if (!resp.ok) {
      withhold(`${resp.status}: ${body.error || resp.statusText}`);
    } else {
      $('message').hidden = true;
      render(body);
    }
  } catch (e) {
    withhold(`The server does not answer (${e.message}); retrying.`);
  }
  setTimeout(refresh, REFRESH_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('key').value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    $('key').value = '';
  });
  $('forget').addEventListener('click', () => sessionStorage.removeItem(KEY));
  refresh();
});
