// The Analytics page in a real browser: Debian's Chromium, driven by
// playwright-core, loads /analytics/ through nginx -> PostgREST -> the
// database after test/browser/fixture.sql's burst, and checks every chart's
// data table, the "now" tables and the Caps table against the database's
// own counts, a filter, paging, a post's detail from the keyboard, that one tenant sees
// none of the other's rows, the operator's view and settling, the labels of
// every control, and that the console stays free of errors.
//   node analytics_test.mjs BASE_URL JWT_SECRET_FILE DB RUN SCREENSHOT_DIR
// Prints "ok - ..." / "not ok - ..." lines, then "browser: N passed, M failed".
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

// playwright-core is installed with the page's packages, in api/node_modules.
const { chromium } = createRequire(new URL('../../api/package.json', import.meta.url))('playwright-core');
const [base, secretFile, db, run, shots] = process.argv.slice(2);
const secret = readFileSync(secretFile, 'utf8').trim();
const tenantA = `acme-${run}`;
const tenantB = `globex-${run}`;
let passed = 0;
let failed = 0;

// Records one assertion.
function check(name, ok, got) {
  if (ok) { passed += 1; console.log(`ok - ${name}`); }
  else { failed += 1; console.log(`not ok - ${name} (got ${JSON.stringify(got)})`); }
}

// An HS256 JWT, as scripts/jwt.py signs it.
function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

// One value from the database, as the superuser (not through the API).
function sql(query) {
  return execFileSync('psql', ['-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', query], { encoding: 'utf8' }).trim();
}

// A tenant's accounts, as a SQL list.
const accountsOf = (owner) => `(SELECT id FROM vibescaling.tiktok_accounts WHERE owner = '${owner}')`;

// The cells of a table, as text, row by row.
async function cells(page, selector) {
  return page.$$eval(`${selector} tbody tr:not(.empty)`, (rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
}

// How close n is to cap, as account_caps' readers see it (SQL): near from
// 80 % of the cap (scheduling warns: ceil(0.8 * cap)), full at it, over above it.
const capMark = (n, cap) => `CASE WHEN ${n} > ${cap} THEN 'over' WHEN ${n} = ${cap} THEN 'full'
                                  WHEN ${n} >= ceil(0.8 * ${cap}) THEN 'near' ELSE '' END`;

// The Caps table a tenant should see, from vibescaling.account_caps: one
// line per account, "account|daily cap|inbox uploads / 5|n / cap x 8 days",
// each count followed by its mark; sorted.
function capsOf(owner) {
  return sql(`SELECT concat_ws('|', coalesce(a.display_name, a.open_id),
                               c.daily_cap || CASE WHEN c.cap_learned_from_tiktok THEN ' from TikTok' ELSE '' END,
                               max(c.inbox_uploads_24h) || ' / 5 ' || ${capMark('max(c.inbox_uploads_24h)', '5')},
                               string_agg(c.direct_posts || ' / ' || c.daily_cap || ' ' || ${capMark('c.direct_posts', 'c.daily_cap')},
                                          '|' ORDER BY c.day))
                FROM vibescaling.account_caps c JOIN vibescaling.tiktok_accounts a ON a.id = c.tiktok_account_id
               WHERE c.owner = '${owner}'
               GROUP BY a.id, a.display_name, a.open_id, c.daily_cap, c.cap_learned_from_tiktok`)
    .split('\n').filter(Boolean).map((l) => l.split('|').map((x) => x.trim()).join('|')).sort();
}

// The Caps table's rows as the page shows them, in the same form as capsOf.
async function capsShown(page) {
  return (await cells(page, '#account-caps')).map((r) => r.join('|')).sort();
}

// Sums one column of a chart's data table.
async function columnSum(page, chart, col) {
  const rows = await cells(page, `[data-chart="${chart}"] table.data`);
  return rows.reduce((s, r) => s + Number(r[col]), 0);
}

// The period a page shows (from a whole hour to its load), as SQL over created_at.
async function periodOf(page) {
  const { from, to } = await page.$eval('#main', (m) => ({ from: m.dataset.from, to: m.dataset.to }));
  return { from, to, sql: `created_at >= '${from}' AND created_at < '${to}'` };
}

// Opens the page with a token and waits for its first load.
async function open(browser, token, errors) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 2200 }, timezoneId: 'Europe/Paris' });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/analytics/#token=${token}`);
  try {
    await page.waitForFunction(() => /Updated at/.test(document.querySelector('#status').textContent), null, { timeout: 20000 });
  } catch (e) {
    // The page's own errors say why it never loaded.
    console.log(`# the page did not load; its status: ${await page.textContent('#status')}; console: ${errors.join(' | ')}`);
    throw e;
  }
  await page.waitForFunction(() => document.querySelector('#page-info').textContent.startsWith('Calls'), null, { timeout: 20000 });
  return page;
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const errors = [];
try {
  // ---------------------------------------------------------------- tenant A
  const a = await open(browser, jwt({ role: 'vibescaling_user', sub: tenantA }), errors);
  const aPeriod = await periodOf(a);
  const period = aPeriod.sql;
  const aCalls = `FROM vibescaling.dispatch_logs WHERE tiktok_account_id IN ${accountsOf(tenantA)}
                  AND endpoint <> 'webhook' AND ${period}`;
  check('the zone is named', (await a.textContent('#zone')).startsWith('Europe/Paris'), await a.textContent('#zone'));
  check('the address bar no longer shows the token', !a.url().includes('token='), a.url());

  const calls = Number(sql(`SELECT count(*) ${aCalls}`));
  check(`calls chart: ${calls} calls, as the log counts them`, await columnSum(a, 'calls', 1) === calls, await columnSum(a, 'calls', 1));
  const fails = Number(sql(`SELECT count(*) ${aCalls} AND outcome = 'failure' AND NOT outcome_unknown`));
  check(`... ${fails} failures`, await columnSum(a, 'calls', 2) === fails, await columnSum(a, 'calls', 2));
  const unknown = Number(sql(`SELECT count(*) ${aCalls} AND outcome_unknown`));
  check(`... ${unknown} of unknown outcome`, await columnSum(a, 'calls', 3) === unknown, await columnSum(a, 'calls', 3));
  const successRows = await cells(a, '[data-chart="success"] table.data');
  const callRows = await cells(a, '[data-chart="calls"] table.data');
  check('calls chart: every hour of the period, empty ones included (24 or 25 of them)',
    callRows.length === 24 || callRows.length === 25, callRows.length);
  check('success rate: one value per hour of the calls chart, each (calls - failures - unknown) / calls, none for no calls',
    successRows.length === callRows.length && successRows.every((r, i) => {
      const [, c, f, u] = callRows[i].map(Number);
      return c === 0 ? r[1] === '' : Math.abs(Number(r[1]) - ((c - f - u) / c) * 100) < 0.01;
    }), successRows);

  const perEndpoint = Object.fromEntries(sql(`SELECT endpoint || '=' || count(*) ${aCalls} GROUP BY endpoint`)
    .split('\n').map((l) => l.split('=')).map(([e, n]) => [e, Number(n)]));
  const latency = await cells(a, '[data-chart="latency"] table.data');
  check('latency chart: every endpoint with its number of calls',
    latency.length === Object.keys(perEndpoint).length && latency.every((r) => perEndpoint[r[0]] === Number(r[1])),
    { latency, perEndpoint });
  check('... with p50 <= p95 <= p99', latency.every((r) => Number(r[2]) <= Number(r[3]) && Number(r[3]) <= Number(r[4])), latency);

  const byCode = sql(`SELECT error_code || '|' || endpoint || '|' || count(*) ${aCalls} AND outcome = 'failure' AND NOT outcome_unknown
                      GROUP BY error_code, endpoint ORDER BY 1`).split('\n').filter(Boolean).map((l) => l.split('|'));
  const failRows = (await cells(a, '[data-chart="failures"] table.data')).map((r) => r.join('|')).sort();
  check('failures by code: each code and endpoint with its count',
    JSON.stringify(failRows) === JSON.stringify(byCode.map((r) => r.join('|')).sort()), { failRows, byCode });

  const direct = Number(sql(`SELECT count(*) ${aCalls} AND endpoint IN ('video_init', 'content_init') AND outcome = 'success'
                            AND NOT outcome_unknown AND post_id IN (SELECT id FROM vibescaling.posts WHERE mode = 'direct')`));
  const inbox = Number(sql(`SELECT count(*) ${aCalls} AND endpoint = 'inbox_video_init' AND outcome = 'success'`));
  check(`posts per account per day: ${direct} Direct Posts and ${inbox} inbox uploads`,
    await columnSum(a, 'caps', 2) === direct && await columnSum(a, 'caps', 3) === inbox,
    [await columnSum(a, 'caps', 2), await columnSum(a, 'caps', 3)]);
  const delayed = Number(sql(`SELECT count(*) FROM vibescaling.posts WHERE owner = '${tenantA}' AND status = 'posted'
                             AND scheduled_at IS NOT NULL AND posted_at >= '${aPeriod.from}' AND posted_at < '${aPeriod.to}'`));
  check(`schedule delay: the ${delayed} scheduled posts published`, await columnSum(a, 'delay', 1) === delayed,
    await columnSum(a, 'delay', 1));

  const scheduled = Number(sql(`SELECT count(*) FROM vibescaling.posts WHERE owner = '${tenantA}' AND status = 'scheduled'
                               AND coalesce(next_attempt_at, scheduled_at) < now() + interval '24 hours'`));
  check(`now: the ${scheduled} posts scheduled in the next 24 hours`, (await cells(a, '#scheduled')).length === scheduled,
    await cells(a, '#scheduled'));
  const processing = Number(sql(`SELECT count(*) FROM vibescaling.publish_records r JOIN vibescaling.posts p ON p.id = r.post_id
                                WHERE p.owner = '${tenantA}' AND r.status = 'processing'`));
  check(`now: the ${processing} publishes TikTok is processing`, (await cells(a, '#processing')).length === processing,
    (await cells(a, '#processing')).length);
  check('now: the account to authorise again', JSON.stringify((await cells(a, '#reauth')).map((r) => r[0]))
    === JSON.stringify(['acme creator 6']), await cells(a, '#reauth'));
  check('a tenant is not shown the unknown outcomes to settle', await a.isHidden('#unknown-box'), null);
  const unconfirmed = Number(sql(`SELECT count(*) FROM vibescaling.publish_records r JOIN vibescaling.posts p ON p.id = r.post_id
                                 WHERE p.owner = '${tenantA}' AND r.status = 'unconfirmed'`));
  check(`now: the ${unconfirmed} publish TikTok never confirmed`, unconfirmed === 1
    && (await cells(a, '#unconfirmed')).length === unconfirmed, await cells(a, '#unconfirmed'));

  // Caps: the table against account_caps, cell by cell, with its marks.
  const aCaps = capsOf(tenantA);
  const aCapsShown = await capsShown(a);
  check(`caps: each of A's ${aCaps.length} active accounts, its cap, inbox uploads and 8 UTC days as account_caps counts them`,
    aCaps.length === 5 && JSON.stringify(aCapsShown) === JSON.stringify(aCaps), { aCapsShown, aCaps });
  const capDays = sql(`SELECT string_agg(DISTINCT day::text, ',' ORDER BY day::text) FROM vibescaling.account_caps`).split(',');
  const capHeads = await a.$$eval('#account-caps thead th', (ths) => ths.map((th) => ({
    scope: th.scope, day: th.querySelector('time')?.dateTime ?? null, text: th.textContent.trim() })));
  check(`caps: a column per UTC day, today first (${capDays[0]} to ${capDays[7]}), each named as UTC`,
    capDays.length === 8 && JSON.stringify(capHeads.slice(3).map((h) => h.day)) === JSON.stringify(capDays)
      && capHeads.slice(3).every((h) => /\(UTC/.test(h.text)) && /today/.test(capHeads[3].text), capHeads);
  const capMarks = await a.$$eval('#account-caps tbody tr', (rows) => rows.map((r) => [...r.cells].slice(2).map((c) => ({
    level: (c.textContent.trim().match(/ (near|full|over)$/) || [])[1] || null,
    near: c.classList.contains('cap-near'), full: c.classList.contains('cap-full'), title: c.title }))));
  check('caps: a cell near its cap has class cap-near, one at or over it cap-full, with its word and a title; others neither',
    capMarks.flat().every((c) => c.near === (c.level === 'near') && c.full === (c.level === 'full' || c.level === 'over')
      && c.title !== ''), capMarks);
  const creator3 = await a.$$eval('#account-caps tbody tr', (rows) => rows.map((r) => [...r.cells])
    .filter((cs) => cs[0].textContent.trim() === 'acme creator 3')
    .map((cs) => cs.slice(3).map((c) => [c.textContent.trim(), c.className])));
  const creator3Sql = sql(`SELECT string_agg(direct_posts::text, ',' ORDER BY day) FROM vibescaling.account_caps
                            WHERE tiktok_account_id = (SELECT id FROM public.browser_accounts WHERE owner = '${tenantA}' AND i = 3)`)
    .split(',').map(Number);
  check('caps: acme creator 3 has 11 Direct Posts in 2 days (unmarked), 12 in 3 (near), 15 in 4 (full)',
    creator3Sql.slice(2, 5).join() === '11,12,15' && creator3.length === 1
      && creator3[0][2][0] === '11 / 15' && !/cap-(near|full)/.test(creator3[0][2][1])
      && creator3[0][3][0] === '12 / 15 near' && /\bcap-near\b/.test(creator3[0][3][1])
      && creator3[0][4][0] === '15 / 15 full' && /\bcap-full\b/.test(creator3[0][4][1]), { creator3, creator3Sql });
  check("caps: acme creator 2's cap is the 3 TikTok showed, marked, and today is full",
    aCapsShown.some((r) => r.startsWith('acme creator 2|3 from TikTok|') && r.split('|')[3] === '3 / 3 full'), aCapsShown);
  check('caps: a caption, and a scope on every header cell (a column header per column, the account per row)',
    (await a.textContent('#account-caps caption')).trim().length > 0
      && capHeads.every((h) => h.scope === 'col')
      && await a.$$eval('#account-caps tbody th', (ths) => ths.length === 5 && ths.every((th) => th.scope === 'row')), capHeads);
  const capLine = await a.evaluate(() => {
    const ds = window.Chart.getChart(document.querySelector('[data-chart="caps"] canvas')).data.datasets.at(-1);
    return { label: ds.label, data: ds.data };
  });
  const aMaxCap = sql(`SELECT max(daily_cap) FROM vibescaling.account_caps WHERE owner = '${tenantA}'`);
  check(`posts per account per day: the cap drawn across is the highest account's (${aMaxCap} a day)`,
    capLine.label === `Direct Post cap (~${aMaxCap} a day)` && capLine.data.every((v) => String(v) === aMaxCap), capLine);

  // After the publish: the posts' latest counts, and the followers by day.
  const latest = sql(`SELECT string_agg(view_count::text, ',' ORDER BY view_count DESC) FROM vibescaling.post_metrics_latest
                       WHERE post_id IN (SELECT id FROM vibescaling.posts WHERE owner = '${tenantA}')`);
  const metricRows = await cells(a, '#post-metrics');
  check(`post metrics: each post's latest views, most viewed first (${latest})`,
    metricRows.map((r) => r[1]).join(',') === latest, metricRows);
  check('... with what each gained in the period', metricRows.every((r) => Number(r[2]) > 0), metricRows);
  const followerRows = Number(sql(`SELECT count(DISTINCT (tiktok_account_id, (taken_at AT TIME ZONE 'Europe/Paris')::date))
                                    FROM vibescaling.account_metrics WHERE owner = '${tenantA}'
                                     AND taken_at >= '${aPeriod.from}' AND taken_at < '${aPeriod.to}'`));
  check(`followers: one row per account and day with a snapshot in the period (${followerRows})`,
    followerRows > 0 && (await cells(a, '[data-chart="followers"] table.data')).length === followerRows,
    await cells(a, '[data-chart="followers"] table.data'));
  for (const chart of ['calls', 'success', 'latency', 'failures', 'caps', 'delay', 'followers']) {
    const drawn = await a.$eval(`[data-chart="${chart}"] canvas`, (c) => c.width > 0 && c.height > 0);
    check(`the ${chart} chart is drawn`, drawn, drawn);
  }

  // History: paging and a filter.
  check('history: a first page of 50 calls, older ones after it', (await a.textContent('#page-info')) === 'Calls 1–50'
    && !(await a.isDisabled('#next')), await a.textContent('#page-info'));
  const firstPage = await cells(a, '#history');
  await a.click('#next');
  await a.waitForFunction(() => document.querySelector('#page-info').textContent.startsWith('Calls 51'));
  const secondPage = await cells(a, '#history');
  check(`history: "Older" shows calls 51–${calls}, the oldest: ${calls} in all, as the log counts them`,
    (await a.textContent('#page-info')) === `Calls 51–${calls} (the oldest)` && await a.isDisabled('#next')
    && secondPage.length === calls - 50 && secondPage[0].join() !== firstPage[0].join(),
    [await a.textContent('#page-info'), secondPage.length]);
  await a.click('#prev');
  await a.waitForFunction(() => document.querySelector('#page-info').textContent.startsWith('Calls 1–'));
  check('... and "Newer" goes back', (await cells(a, '#history'))[0].join() === firstPage[0].join(), null);
  await a.selectOption('#f-endpoint', 'video_init');
  await a.selectOption('#f-outcome', 'failure');
  await a.click('#filters button[type=submit]');
  await a.waitForFunction(() => [...document.querySelectorAll('#history tbody tr td:nth-child(2)')]
    .every((td) => td.textContent === 'video_init'));
  const filtered = await cells(a, '#history');
  const refusedInits = Number(sql(`SELECT count(*) ${aCalls} AND endpoint = 'video_init' AND outcome = 'failure' AND NOT outcome_unknown`));
  check(`filter endpoint video_init, outcome failure: the ${refusedInits} refused inits`,
    filtered.length === refusedInits && filtered.every((r) => r[1] === 'video_init' && r[2] === 'failure'
      && r[4] === 'spam_risk_too_many_posts'), filtered);
  await a.click('#filters button[type=reset]');
  await a.waitForFunction(() => document.querySelector('#page-info').textContent === 'Calls 1–50');

  // A post's detail, from the keyboard: its record and every call made for it.
  const button = a.locator('#history tbody button[data-post]').first();
  const postId = await button.getAttribute('data-post');
  await button.focus();
  await a.keyboard.press('Enter');
  await a.waitForFunction(() => document.querySelector('#detail').open
    && /Calls made for it/.test(document.querySelector('#detail-body').textContent));
  const postCalls = Number(sql(`SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = '${postId}'`));
  check(`a post opened with Enter shows its ${postCalls} calls`,
    (await a.textContent('#detail-body')).includes(`Calls made for it (${postCalls})`), await a.textContent('#detail-body'));
  await a.screenshot({ path: `${shots}/analytics-detail.png` });
  await a.keyboard.press('Escape');
  check('... and Escape closes it', !(await a.$eval('#detail', (d) => d.open)), null);

  // Every form control has a label.
  const unlabelled = await a.$$eval('input:not([type=hidden]), select, textarea, button', (els) =>
    els.filter((e) => e.offsetParent !== null && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
      && !(e.tagName === 'BUTTON' && e.textContent.trim())).map((e) => e.id || e.outerHTML.slice(0, 60)));
  check('every visible control has a label', unlabelled.length === 0, unlabelled);

  // Text contrast (WCAG AA, 4.5:1): every visible element with text of its
  // own, against the first opaque background behind it (disabled buttons
  // are exempt, as WCAG says).
  const lowContrast = await a.evaluate(() => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => v / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
      .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
      const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!ownText || el.offsetParent === null || el.disabled) continue;
      const [l1, l2] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))].sort((x, y) => y - x);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      if (ratio < 4.5) bad.push(`${el.tagName}.${el.className}: ${ratio.toFixed(2)} "${el.textContent.trim().slice(0, 30)}"`);
    }
    return bad;
  });
  check('every visible text has a contrast of at least 4.5:1 with its background', lowContrast.length === 0, lowContrast);
  await a.screenshot({ path: `${shots}/analytics.png`, fullPage: true });

  // ---------------------------------------------------------------- tenant B
  const b = await open(browser, jwt({ role: 'vibescaling_user', sub: tenantB }), errors);
  const bCalls = Number(sql(`SELECT count(*) FROM vibescaling.dispatch_logs WHERE tiktok_account_id IN ${accountsOf(tenantB)}
                             AND endpoint <> 'webhook' AND ${(await periodOf(b)).sql}`));
  check(`B's page counts B's ${bCalls} calls only`, await columnSum(b, 'calls', 1) === bCalls, await columnSum(b, 'calls', 1));
  const bText = await b.textContent('body');
  const aPosts = sql(`SELECT string_agg(id::text, ' ') FROM vibescaling.posts WHERE owner = '${tenantA}'`).split(' ');
  check("B's page shows none of A's posts, accounts or captions",
    !/acme/.test(bText) && !aPosts.some((id) => bText.includes(id.slice(0, 8))), bText.match(/acme.{0,40}/));
  const bHistoryPosts = await b.$$eval('#history button[data-post]', (bs) => bs.map((x) => x.dataset.post));
  check("... and its history none of A's calls", bHistoryPosts.every((id) => !aPosts.includes(id)), bHistoryPosts);
  check("... nor A's post metrics or followers", (await cells(b, '#post-metrics')).length === 0
    && (await cells(b, '[data-chart="followers"] table.data')).length === 0, await cells(b, '#post-metrics'));
  const bCaps = await capsShown(b);
  check("... and its Caps table B's own accounts only, as account_caps counts them",
    JSON.stringify(bCaps) === JSON.stringify(capsOf(tenantB)) && bCaps.length === 1 && !bCaps.some((r) => /acme/.test(r)), bCaps);
  await b.close();

  // ---------------------------------------------------------------- operator
  const op = await open(browser, jwt({ role: 'vibescaling_operator' }), errors);
  const allCalls = Number(sql(`SELECT count(*) FROM vibescaling.dispatch_logs WHERE endpoint <> 'webhook'
                               AND ${(await periodOf(op)).sql}`));
  check(`the operator counts every tenant's ${allCalls} calls`, await columnSum(op, 'calls', 1) === allCalls,
    await columnSum(op, 'calls', 1));
  const allAccounts = Number(sql('SELECT count(DISTINCT tiktok_account_id) FROM vibescaling.account_caps'));
  const opCaps = await capsShown(op);
  check(`the operator's Caps table has every tenant's ${allAccounts} active accounts`,
    opCaps.length === Math.min(allAccounts, 100) && capsOf(tenantA).concat(capsOf(tenantB)).every((r) => opCaps.includes(r)),
    opCaps.length);
  const unknownPost = sql(`SELECT post_id FROM vibescaling.unknown_outcomes u JOIN vibescaling.posts p ON p.id = u.post_id
                           WHERE p.owner = '${tenantA}'`);
  const unknownRows = await cells(op, '#unknown');
  check('the operator sees the post of unknown outcome', unknownRows.some((r) => r[1] === 'acme unknown outcome'), unknownRows);
  await op.click(`button[aria-label="Settle post ${unknownPost}"]`);
  await op.check('#settle input[value=false]');
  await op.click('#settle-form button[type=submit]');
  await op.waitForFunction(() => !document.querySelector('#settle').open);
  await op.waitForFunction(() => !/acme unknown outcome/.test(document.querySelector('#unknown').textContent));
  check('... settles it (not on TikTok) from the page, and it waits no more',
    sql(`SELECT count(*) FROM vibescaling.unknown_outcomes WHERE post_id = '${unknownPost}'`) === '0', null);
  await op.close();

  // ---------------------------------------------------------------- refresh
  const before = await a.textContent('#status');
  await a.evaluate(() => new Promise((r) => setTimeout(r, 31000)));
  check('the page refreshes itself while open (no reload)', (await a.textContent('#status')) !== before
    && await a.evaluate(() => performance.getEntriesByType('navigation').length === 1), await a.textContent('#status'));
  await a.close();
} finally {
  await browser.close();
}
check('the browser console has no errors', errors.length === 0, errors);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
