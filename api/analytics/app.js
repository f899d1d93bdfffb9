// The Analytics page: everything comes from vibescaling's HTTP API (nginx in
// front of PostgREST) with the viewer's JWT. The charts and the "now" tables
// come from one call, GET /api/v1/rpc/analytics (hourly rollups in SQL); the
// dispatch history is read a page at a time from /api/v1/dispatch_logs with
// PostgREST's Range header. No framework; the charts are Chart.js's.

const API = '/api/v1';
const PAGE_SIZE = 50;
const REFRESH_MS = 30000;
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const INBOX_LIMIT = 5;          // unfinished inbox uploads TikTok holds per creator in 24 hours
const DEFAULT_DAILY_CAP = 15;   // Direct Posts a day, when no account's cap is known
const ENDPOINT_COLOURS = ['#0b5cad', '#a3161b', '#1b7f3b', '#7a4b00', '#6a3d9a', '#00727a', '#5b5b5b', '#b3006b'];

const state = {
  token: null,
  claims: null,
  data: null,          // the last answer of /rpc/analytics
  period: null,        // {from, to} as Date
  offset: 0,           // the history page's first row
  accounts: new Map(), // account id -> name, from every answer seen
  charts: {},
  timer: null,
};

const $ = (sel) => document.querySelector(sel);

// Formats an ISO time in the viewer's zone: with the date, or the hour only.
function fmtTime(iso, { day = false, seconds = false } = {}) {
  if (!iso) return '';
  const opts = day ? { month: 'short', day: 'numeric', timeZone: ZONE }
    : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: ZONE };
  if (seconds) opts.second = '2-digit';
  return new Intl.DateTimeFormat(undefined, opts).format(new Date(iso));
}

// The zone's name and its abbreviation now, e.g. "Europe/Paris (CET)".
function zoneLabel() {
  const part = new Intl.DateTimeFormat(undefined, { timeZone: ZONE, timeZoneName: 'short' })
    .formatToParts(new Date()).find((p) => p.type === 'timeZoneName');
  return part ? `${ZONE} (${part.value})` : ZONE;
}

// Decodes a JWT's claims (not verified here: PostgREST verifies every request).
function claimsOf(token) {
  const part = token.split('.')[1];
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  return JSON.parse(json);
}

// One request to the API; a 401 sends the viewer back to sign in.
async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(API + path, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, Accept: 'application/json',
               ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (res.status === 401) {
    signOut('Your token was refused (expired or not valid): sign in again.');
    throw new Error('401');
  }
  if (!res.ok) {
    throw new Error((json && json.message) || `HTTP ${res.status}`);
  }
  return { json, headers: res.headers, status: res.status };
}

// Clears the token and shows the sign-in form, with a reason.
function signOut(reason = '') {
  sessionStorage.removeItem('vibescaling.token');
  state.token = null;
  clearInterval(state.timer);
  $('#main').hidden = true;
  $('#sign-out').hidden = true;
  $('#who').textContent = '';
  $('#sign-in').hidden = false;
  $('#sign-in-error').textContent = reason;
  $('#token-input').focus();
}

// Starts the page with a token: who it is, then the first load and the refresh timer.
function signIn(token) {
  try {
    state.claims = claimsOf(token);
  } catch {
    $('#sign-in-error').textContent = 'This is not a JWT.';
    return;
  }
  state.token = token;
  sessionStorage.setItem('vibescaling.token', token);
  const operator = state.claims.role === 'vibescaling_operator';
  $('#who').textContent = operator ? 'Operator: every tenant' : `Tenant ${state.claims.sub || '(none)'}`;
  $('#owner').hidden = !operator;
  $('#owner-label').hidden = !operator;
  $('#unknown-box').hidden = !operator;
  $('#sign-in').hidden = true;
  $('#main').hidden = false;
  $('#sign-out').hidden = false;
  $('#zone').textContent = zoneLabel();
  refresh({ history: true });
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (document.visibilityState === 'visible') refresh({ history: state.offset === 0, quiet: true });
  }, REFRESH_MS);
}

// The period the form asks for, as two Dates.
function chosenPeriod() {
  const range = $('#range').value;
  const to = new Date();
  if (range === 'custom') {
    const from = new Date($('#from').value);
    const until = new Date($('#to').value);
    if (Number.isNaN(from.getTime()) || Number.isNaN(until.getTime()) || from >= until) {
      throw new Error('Choose a "from" before the "to".');
    }
    return { from, to: until };
  }
  const hours = { '24h': 24, '7d': 24 * 7, '30d': 24 * 30 }[range];
  return { from: new Date(to.getTime() - hours * 3600e3), to };
}

// The period as the server counts it: from a whole hour (its rollups count
// whole hours), so the charts and the history cover the same calls.
function wholeHours({ from, to }) {
  const start = new Date(from);
  start.setUTCMinutes(0, 0, 0);
  return { from: start, to };
}

// Reloads the analytics (and the history's current page when asked).
async function refresh({ history = false, quiet = false } = {}) {
  try {
    state.period = wholeHours(chosenPeriod());
    $('#main').dataset.from = state.period.from.toISOString();
    $('#main').dataset.to = state.period.to.toISOString();
  } catch (e) {
    showError(e.message);
    return;
  }
  if (!quiet) $('#status').textContent = 'Loading…';
  try {
    const q = new URLSearchParams({ from: state.period.from.toISOString(), to: state.period.to.toISOString(), tz: ZONE });
    const owner = $('#owner').value.trim();
    if (!$('#owner').hidden && owner) q.set('owner', owner);
    const { json } = await api(`/rpc/analytics?${q}`);
    state.data = json;
    rememberAccounts(json);
    renderNow(json);
    renderCaps(json);
    renderCharts(json);
    renderPostMetrics(json);
    fillAccountFilter();
    if (history) await loadHistory();
    showError('');
    $('#status').textContent = `Updated at ${fmtTime(json.period.as_of, { seconds: true })}; refreshes every ${REFRESH_MS / 1000} s.`;
  } catch (e) {
    if (e.message !== '401') showError(`Could not load the analytics: ${e.message}`);
  }
}

// Shows (or, with '', hides) the page's error line.
function showError(message) {
  $('#error').textContent = message;
  $('#error').hidden = !message;
}

// Collects account names from an analytics answer, for the tables and the filter.
function rememberAccounts(d) {
  for (const row of [...d.posts_per_account_day, ...d.scheduled_next_24h, ...d.needs_reauth, ...accountCaps(d)]) {
    if (row.tiktok_account_id && row.account) state.accounts.set(row.tiktok_account_id, row.account);
  }
}

// An account's name, or the start of its id.
function accountName(id) {
  return id ? (state.accounts.get(id) || `${id.slice(0, 8)}…`) : '';
}

// Puts a cell's content into a table cell: text (a number is right-aligned),
// a Node, or a list of them.
function put(cell, content) {
  for (const part of [content].flat()) {
    if (part instanceof Node) cell.append(part);
    else {
      cell.append(String(part ?? ''));
      if (typeof part === 'number') cell.classList.add('num');
    }
  }
}

// Replaces a table body's rows; each row is a list of cells: text, a Node,
// or {content, className, title, rowHeader} (a row header is a <th scope="row">).
function fillBody(tbody, rows, emptyText, columns) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = tbody.insertRow();
    tr.className = 'empty';
    const td = tr.insertCell();
    td.colSpan = columns;
    td.textContent = emptyText;
    return;
  }
  for (const cells of rows) {
    const tr = tbody.insertRow();
    for (const cell of cells) {
      const spec = cell !== null && typeof cell === 'object' && !(cell instanceof Node) && !Array.isArray(cell)
        ? cell : { content: cell };
      let td;
      if (spec.rowHeader) {
        td = document.createElement('th');
        td.scope = 'row';
        tr.append(td);
      } else {
        td = tr.insertCell();
      }
      put(td, spec.content);
      if (spec.className) td.classList.add(...spec.className.split(' '));
      if (spec.title) td.title = spec.title;
    }
  }
}

// A button that opens a post's detail (keyboard reachable, unlike a row click).
function postButton(postId, label) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'link-button mono';
  b.textContent = label || `${postId.slice(0, 8)}…`;
  b.setAttribute('aria-label', `Open post ${postId}`);
  b.dataset.post = postId;
  b.addEventListener('click', () => openPost(postId));
  return b;
}

// The "now" tables: scheduled, processing, to re-authorise, unknown outcomes.
function renderNow(d) {
  fillBody($('#scheduled tbody'), d.scheduled_next_24h.map((p) => [
    fmtTime(p.due_at), accountName(p.tiktok_account_id), postButton(p.post_id, p.caption || p.post_id.slice(0, 8)),
  ]), 'Nothing is scheduled in the next 24 hours.', 3);
  fillBody($('#processing tbody'), d.processing.map((r) => [
    fmtTime(r.since), r.tiktok_status || 'not checked yet', postButton(r.post_id),
  ]), 'TikTok is processing nothing of yours.', 3);
  fillBody($('#unconfirmed tbody'), d.unconfirmed.map((r) => [
    fmtTime(r.since), r.tiktok_status || 'never checked', postButton(r.post_id, r.caption || r.post_id.slice(0, 8)),
  ]), 'TikTok confirmed every publish.', 3);
  fillBody($('#reauth tbody'), d.needs_reauth.map((a) => [a.account, a.status_reason || '', fmtTime(a.since)]),
    'Every account is authorised.', 3);
  if (d.unknown_outcomes) {
    fillBody($('#unknown tbody'), d.unknown_outcomes.map((u) => {
      const settle = document.createElement('button');
      settle.type = 'button';
      settle.textContent = 'Settle…';
      settle.setAttribute('aria-label', `Settle post ${u.post_id}`);
      settle.addEventListener('click', () => openSettle(u.post_id));
      return [fmtTime(u.sent_at), postButton(u.post_id, u.caption || u.post_id.slice(0, 8)), u.error_code || '', settle];
    }), 'No post is waiting for a decision.', 4);
  }
}

// Each account's use of its caps (analytics' account_caps; none from a
// server older than 0.1.8).
function accountCaps(d) {
  return Array.isArray(d.account_caps) ? d.account_caps : [];
}

// How close a count is to its cap, as scheduling sees it: "near" from 80 %
// of the cap (where it starts warning: ceil(0.8 * cap), in integers), "full"
// at the cap (it refuses more), "over" above it (a cap TikTok lowered after
// the posts were scheduled). null below 80 %.
function capLevel(n, cap) {
  if (n > cap) return 'over';
  if (n === cap) return 'full';
  if (n >= Math.ceil((4 * cap) / 5)) return 'near';
  return null;
}

// A table cell "n / cap", marked by class and by a word (never by colour
// alone) when near, at or over the cap.
function capCell(n, cap, what) {
  const level = capLevel(n, cap);
  const content = [`${n} / ${cap}`];
  if (level) {
    const mark = document.createElement('span');
    mark.className = 'cap-mark';
    mark.textContent = level;
    content.push(' ', mark);
  }
  const why = { near: 'at 80 % of the cap or more: scheduling warns', full: 'at the cap: scheduling refuses more',
    over: 'over the cap' }[level];
  return { content, className: `num cap-cell${level ? ` cap-${level}${level === 'over' ? ' cap-full' : ''}` : ''}`,
    title: `${n} of ${cap} ${what}${why ? `: ${why}` : ''}` };
}

// A UTC day ("YYYY-MM-DD") as a column header: the date, named as UTC.
function dayHeader(day, i) {
  const time = document.createElement('time');
  time.dateTime = day;
  time.textContent = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', timeZone: 'UTC' })
    .format(new Date(`${day}T00:00:00Z`));
  return [time, i === 0 ? ' (UTC, today)' : ' (UTC)'];
}

// Caps: each account's daily cap, its inbox uploads of the last 24 hours,
// and its Direct Posts on today and the 7 coming UTC days against the cap.
function renderCaps(d) {
  const caps = accountCaps(d);
  const days = caps.length ? caps[0].days.map((x) => x.day) : [];
  fillTable($('#account-caps'), ['Account', 'Daily cap', 'Inbox uploads, 24\u00a0h', ...days.map(dayHeader)],
    caps.map((c) => {
      const learned = document.createElement('span');
      learned.className = 'cap-mark';
      learned.textContent = 'from TikTok';
      const byDay = new Map(c.days.map((x) => [x.day, x.direct_posts]));
      return [
        { content: c.account || accountName(c.tiktok_account_id), rowHeader: true },
        c.cap_learned_from_tiktok
          ? { content: [c.daily_cap, ' ', learned], className: 'num cap-learned',
              title: `TikTok refused a Direct Post after ${c.daily_cap} in 24 hours: scheduling plans with that cap` }
          : c.daily_cap,
        capCell(c.inbox_uploads_24h, INBOX_LIMIT, 'the inbox uploads TikTok holds in 24 hours'),
        ...days.map((day) => capCell(byDay.get(day) ?? 0, c.daily_cap, 'Direct Posts a day')),
      ];
    }), 'No active account.');
  $('#caps-busiest').hidden = caps.length < 100;
}

// The most viewed posts after their publish, with what they gained in the period.
function renderPostMetrics(d) {
  fillBody($('#post-metrics tbody'), d.post_metrics.map((m) => [
    postButton(m.post_id, m.caption || m.post_id.slice(0, 8)), m.views ?? '', m.views_gained ?? '', m.likes ?? '',
    m.comments ?? '', m.shares ?? '', fmtTime(m.taken_at), m.taken_down_at ? fmtTime(m.taken_down_at) : '',
  ]), 'No public post has metrics yet.', 8);
}

// Fills a table with a header row and its rows (emptyText when there are
// none); a header is text, a Node or a list of them. A caption stays.
function fillTable(table, header, rows, emptyText) {
  table.replaceChildren(...(table.caption ? [table.caption] : []));
  const head = table.createTHead().insertRow();
  for (const h of header) {
    const th = document.createElement('th');
    th.scope = 'col';
    put(th, h);
    head.append(th);
  }
  fillBody(table.createTBody(), rows, emptyText, header.length);
  return table;
}

// Writes a chart's data table: the same numbers as the chart, readable by anyone.
function dataTable(name, header, rows) {
  fillTable(document.querySelector(`[data-chart="${name}"] table.data`), header, rows, 'No data in this period.');
}

// Creates a chart once, or gives it new data.
function draw(name, config) {
  const existing = state.charts[name];
  if (existing) {
    existing.data = config.data;
    existing.options = config.options;
    existing.update('none');
    return;
  }
  const canvas = document.querySelector(`[data-chart="${name}"] canvas`);
  state.charts[name] = new window.Chart(canvas, config);
}

// A rate (0..1) as a percentage with two decimals; null (no calls) stays null.
function percent(rate) {
  return rate == null ? null : +(rate * 100).toFixed(2);
}

// Every chart and its data table, from one analytics answer.
function renderCharts(d) {
  const byDay = d.period.bucket === 'day';
  const label = (t) => fmtTime(t, { day: byDay });
  const common = { responsive: true, maintainAspectRatio: false, animation: false };

  const calls = d.calls;
  draw('calls', { type: 'bar', data: { labels: calls.map((c) => label(c.t)), datasets: [
      { label: 'succeeded', data: calls.map((c) => c.calls - c.failures - c.unknown), backgroundColor: '#0b5cad', stack: 's' },
      { label: 'failed', data: calls.map((c) => c.failures), backgroundColor: '#a3161b', stack: 's' },
      { label: 'unknown outcome', data: calls.map((c) => c.unknown), backgroundColor: '#d08c00', stack: 's' },
    ] }, options: { ...common, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
  dataTable('calls', [byDay ? 'Day' : 'Hour', 'Calls', 'Failures', 'Unknown'],
    calls.map((c) => [label(c.t), c.calls, c.failures, c.unknown]));

  draw('success', { type: 'line', data: { labels: calls.map((c) => label(c.t)), datasets: [
      { label: 'success rate (%)', data: calls.map((c) => percent(c.success_rate)), borderColor: '#1b7f3b',
        backgroundColor: '#1b7f3b', spanGaps: true },
    ] }, options: { ...common, scales: { y: { min: 0, max: 100 } } } });
  dataTable('success', [byDay ? 'Day' : 'Hour', 'Success rate (%)'],
    calls.map((c) => [label(c.t), percent(c.success_rate) ?? '']));

  const lat = d.latency;
  draw('latency', { type: 'bar', data: { labels: lat.map((l) => l.endpoint), datasets: [
      { label: 'p50', data: lat.map((l) => l.p50_ms), backgroundColor: '#0b5cad' },
      { label: 'p95', data: lat.map((l) => l.p95_ms), backgroundColor: '#d08c00' },
      { label: 'p99', data: lat.map((l) => l.p99_ms), backgroundColor: '#a3161b' },
    ] }, options: { ...common, scales: { y: { beginAtZero: true, title: { display: true, text: 'ms' } } } } });
  dataTable('latency', ['Endpoint', 'Calls', 'p50 ms', 'p95 ms', 'p99 ms'],
    lat.map((l) => [l.endpoint, l.calls, l.p50_ms, l.p95_ms, l.p99_ms]));

  const fails = d.failures_by_code;
  draw('failures', { type: 'bar', data: { labels: fails.map((f) => `${f.error_code || '(none)'} · ${f.endpoint}`),
    datasets: [{ label: 'failures', data: fails.map((f) => f.failures), backgroundColor: '#a3161b' }] },
    options: { ...common, indexAxis: 'y', scales: { x: { beginAtZero: true } } } });
  dataTable('failures', ['Error code', 'Endpoint', 'Failures'],
    fails.map((f) => [f.error_code || '(none)', f.endpoint, f.failures]));

  // Posts per account per day: the busiest accounts (up to 8), and the cap.
  const days = [...new Set(d.posts_per_account_day.map((r) => r.day))].sort();
  const totals = new Map();
  for (const r of d.posts_per_account_day) {
    totals.set(r.tiktok_account_id, (totals.get(r.tiktok_account_id) || 0) + r.direct_posts + r.inbox_posts);
  }
  const busiest = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([id]) => id);
  const cell = new Map(d.posts_per_account_day.map((r) => [`${r.tiktok_account_id}|${r.day}`, r]));
  // The cap drawn across: the highest daily cap scheduling plans with for
  // an account in scope (an account TikTok showed a lower cap keeps its own).
  const caps = accountCaps(d);
  const cap = caps.length ? Math.max(...caps.map((c) => c.daily_cap))
    : (d.caps && d.caps.direct_posts_per_day) || DEFAULT_DAILY_CAP;
  draw('caps', { type: 'bar', data: { labels: days, datasets: [
      ...busiest.map((id, i) => ({ label: accountName(id), backgroundColor: ENDPOINT_COLOURS[i % ENDPOINT_COLOURS.length],
        data: days.map((day) => (cell.get(`${id}|${day}`) || { direct_posts: 0 }).direct_posts) })),
      { type: 'line', label: `Direct Post cap (~${cap} a day)`, borderColor: '#1b1f24',
        borderDash: [6, 4], pointRadius: days.length === 1 ? 4 : 0, data: days.map(() => cap) },
    ] }, options: { ...common, scales: { y: { beginAtZero: true } } } });
  document.querySelector('[data-chart="caps"] summary').textContent = d.accounts_posting > 20
    ? `Data: the 20 busiest of ${d.accounts_posting} accounts` : 'Data';
  dataTable('caps', ['Day (UTC)', 'Account', 'Direct Posts', 'Inbox uploads', 'Refused inits'],
    d.posts_per_account_day.map((r) => [r.day, r.account || accountName(r.tiktok_account_id),
      r.direct_posts, r.inbox_posts, r.failed_inits]));

  const delay = d.schedule_delay;
  draw('delay', { type: 'line', data: { labels: delay.map((r) => label(r.t)), datasets: [
      { label: 'p50 (s)', data: delay.map((r) => r.p50_s), borderColor: '#0b5cad', backgroundColor: '#0b5cad', spanGaps: true },
      { label: 'p95 (s)', data: delay.map((r) => r.p95_s), borderColor: '#a3161b', backgroundColor: '#a3161b', spanGaps: true },
    ] }, options: { ...common, scales: { y: { beginAtZero: true } } } });
  dataTable('delay', [byDay ? 'Day' : 'Hour', 'Posts', 'p50 s', 'p95 s'],
    delay.map((r) => [label(r.t), r.posts, r.p50_s ?? '', r.p95_s ?? '']));

  // Followers: one line per account over the days that have a snapshot.
  const followers = d.followers;
  const followerDays = [...new Set(followers.map((f) => f.day))].sort();
  const accounts = [...new Set(followers.map((f) => f.account))];
  const palette = ['#0b5cad', '#a3161b', '#1b7f3b', '#d08c00', '#6b3fa0', '#00727a'];
  draw('followers', { type: 'line', data: { labels: followerDays, datasets: accounts.map((name, i) => ({
      label: name, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], spanGaps: true,
      data: followerDays.map((day) => followers.find((f) => f.account === name && f.day === day)?.followers ?? null),
    })) }, options: { ...common, scales: { y: { beginAtZero: false } } } });
  dataTable('followers', ['Account', 'Day', 'Followers'], followers.map((f) => [f.account, f.day, f.followers]));
}

// The account filter's choices: every account seen, by name.
function fillAccountFilter() {
  const select = $('#f-account');
  const chosen = select.value;
  const options = [...state.accounts.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  select.replaceChildren(new Option('any', ''), ...options.map(([id, name]) => new Option(name, id)));
  select.value = chosen;
}

// The PostgREST query of the history's filters and period.
function historyQuery() {
  const q = new URLSearchParams({
    select: 'id,created_at,endpoint,outcome,outcome_unknown,http_status,error_code,duration_ms,tiktok_account_id,post_id',
    order: 'id.desc',
  });
  q.append('created_at', `gte.${state.period.from.toISOString()}`);
  q.append('created_at', `lt.${state.period.to.toISOString()}`);
  const account = $('#f-account').value;
  const endpoint = $('#f-endpoint').value;
  const outcome = $('#f-outcome').value;
  const error = $('#f-error').value.trim();
  const post = $('#f-post').value.trim();
  if (account) q.set('tiktok_account_id', `eq.${account}`);
  if (endpoint) q.set('endpoint', `eq.${endpoint}`);
  if (outcome === 'unknown') q.set('outcome_unknown', 'is.true');
  else if (outcome) { q.set('outcome', `eq.${outcome}`); q.set('outcome_unknown', 'is.false'); }
  if (error) q.set('error_code', `eq.${error}`);
  if (post) q.set('post_id', `eq.${post}`);
  return q;
}

// Loads one page of the dispatch history (PostgREST's Range header). It
// asks for one row more than a page, to know whether an older page exists,
// and for no count: counting a tenant's calls over millions of rows would
// cost more than the page itself.
async function loadHistory() {
  const { json: rows } = await api(`/dispatch_logs?${historyQuery()}`, {
    headers: { 'Range-Unit': 'items', Range: `${state.offset}-${state.offset + PAGE_SIZE}` },
  });
  const more = rows.length > PAGE_SIZE;
  const json = rows.slice(0, PAGE_SIZE);
  fillBody($('#history tbody'), json.map((r) => {
    const outcome = r.outcome_unknown ? 'unknown' : r.outcome;
    const span = document.createElement('span');
    span.className = `outcome-${outcome}`;
    span.textContent = outcome;
    return [fmtTime(r.created_at, { seconds: true }), r.endpoint, span, r.http_status ?? '', r.error_code || '',
      r.duration_ms == null ? '' : Math.round(r.duration_ms * 10) / 10, accountName(r.tiktok_account_id),
      r.post_id ? postButton(r.post_id) : ''];
  }), 'No call matches.', 8);
  const first = json.length ? state.offset + 1 : 0;
  const last = state.offset + json.length;
  $('#page-info').textContent = `Calls ${first}–${last}${more ? '' : ' (the oldest)'}`;
  $('#prev').disabled = state.offset === 0;
  $('#next').disabled = !more;
}

// Opens a post's detail: the post, its publish records and every call made for it.
async function openPost(postId) {
  const body = $('#detail-body');
  body.textContent = 'Loading…';
  $('#detail').showModal();
  try {
    const [post, records, calls] = await Promise.all([
      api(`/posts?id=eq.${postId}`),
      api(`/publish_records?post_id=eq.${postId}&order=created_at`),
      api(`/dispatch_logs?post_id=eq.${postId}&order=id&select=id,created_at,endpoint,outcome,outcome_unknown,http_status,error_code,error_message,log_id,publish_id,duration_ms`),
    ]);
    const p = post.json[0];
    body.replaceChildren();
    const h = (text) => { const e = document.createElement('h3'); e.textContent = text; return e; };
    const table = (header, rows, empty) => fillTable(document.createElement('table'), header, rows, empty);
    if (!p) {
      body.append('This post is not yours, or no longer exists.');
      return;
    }
    $('#detail-title').textContent = `Post ${p.id}`;
    body.append(h('The post'), table(['Status', 'Caption', 'Scheduled', 'Posted', 'Attempts', 'Last error'],
      [[p.status, p.caption || '', fmtTime(p.scheduled_at), fmtTime(p.posted_at), p.attempts, p.last_error || '']], ''));
    body.append(h('Publish records'), table(['Created', 'publish_id', 'Status', "TikTok's status", 'Public post ids'],
      records.json.map((r) => [fmtTime(r.created_at), r.publish_id, r.status, r.tiktok_status || '',
        (r.public_post_ids || []).join(', ')]), 'Not published.'));
    body.append(h(`Calls made for it (${calls.json.length})`), table(['Time', 'Endpoint', 'Outcome', 'HTTP', 'Error', 'TikTok log_id', 'ms'],
      calls.json.map((c) => [fmtTime(c.created_at, { seconds: true }), c.endpoint, c.outcome_unknown ? 'unknown' : c.outcome,
        c.http_status ?? '', [c.error_code, c.error_message].filter(Boolean).join(': '), c.log_id || '',
        c.duration_ms == null ? '' : Math.round(c.duration_ms * 10) / 10]), 'No call.'));
  } catch (e) {
    if (e.message !== '401') body.textContent = `Could not load the post: ${e.message}`;
  }
}

// Opens the operator's decision form for a post of unknown outcome.
function openSettle(postId) {
  $('#settle-post').textContent = postId;
  $('#settle-form').reset();
  $('#settle-error').textContent = '';
  $('#settle').dataset.post = postId;
  $('#settle').showModal();
}

// Sends the operator's decision (POST /rpc/settle_post), then refreshes.
async function submitSettle(event) {
  event.preventDefault();
  const onTiktok = new FormData($('#settle-form')).get('on_tiktok') === 'true';
  const publishId = $('#settle-publish-id').value.trim();
  if (onTiktok && !publishId) {
    $('#settle-error').textContent = 'Give the publish_id TikTok shows for it.';
    return;
  }
  try {
    await api('/rpc/settle_post', { method: 'POST',
      body: { post_id: $('#settle').dataset.post, on_tiktok: onTiktok, publish_id: onTiktok ? publishId : null } });
    $('#settle').close();
    refresh({ history: true });
  } catch (e) {
    if (e.message !== '401') $('#settle-error').textContent = e.message;
  }
}

// Wires the forms and buttons, then signs in with the token given, if any.
function start() {
  $('#sign-in-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('#token-input').value.trim()); });
  $('#sign-out').addEventListener('click', () => signOut());
  $('#range').addEventListener('change', () => { $('#custom-range').hidden = $('#range').value !== 'custom'; });
  $('#period').addEventListener('submit', (e) => { e.preventDefault(); state.offset = 0; refresh({ history: true }); });
  $('#filters').addEventListener('submit', (e) => {
    e.preventDefault();
    state.offset = 0;
    loadHistory().catch((err) => err.message !== '401' && showError(err.message));
  });
  $('#filters').addEventListener('reset', () => setTimeout(() => { state.offset = 0; loadHistory().catch(() => {}); }));
  $('#prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); loadHistory().catch(() => {}); });
  $('#next').addEventListener('click', () => { state.offset += PAGE_SIZE; loadHistory().catch(() => {}); });
  $('#settle-form').addEventListener('submit', submitSettle);
  $('#settle-cancel').addEventListener('click', () => $('#settle').close());

  // A token in the URL's fragment (never sent to a server) is taken, then removed from the address bar.
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromUrl) history.replaceState(null, '', location.pathname + location.search);
  const token = fromUrl || sessionStorage.getItem('vibescaling.token');
  if (token) signIn(token);
  else signOut();
}

start();
