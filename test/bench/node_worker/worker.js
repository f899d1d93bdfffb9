#!/usr/bin/env node
// An application worker that publishes due posts to TikTok the way a careful
// team would write it, for test/bench/burst_vs_worker.sh to set beside
// vibescaling.dispatch_due_posts(). Its tables are schema worker
// (schema.sql). Safety rules it keeps:
//   - claims due posts in batches of C with FOR UPDATE SKIP LOCKED (several
//     workers may run), committing the claim (status 'sending');
//   - asks creator_info for every post before its init, and checks the
//     privacy level and interaction toggles against it;
//   - commits an 'in_flight' call_log row for every init BEFORE sending it,
//     then replaces it by the outcome: an init without an answer is
//     'unknown' and never resent (TikTok has no idempotency key);
//   - keeps TikTok's 6 inits a minute per account in the claim;
//   - C requests at once on a keep-alive agent (maxSockets C), and one SQL
//     statement per step for the whole batch (arrays through unnest).
// Usage (PG* environment variables name the database):
//   node worker.js --api-base URL --concurrency C [--pidfile FILE]
// Prints one JSON line: counts, wall time and this process's CPU.
'use strict';

const http = require('http');
const https = require('https');
const fs = require('fs');
const { performance } = require('perf_hooks');
const { Client } = require('pg');

// Parses --name value pairs into an object.
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const apiBase = new URL(args['api-base'] || 'https://open.tiktokapis.com');
const concurrency = Number(args.concurrency || 64);
const transport = apiBase.protocol === 'https:' ? https : http;
// One pool of kept-alive connections: at most C sockets, all reused.
const agent = new transport.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
const CALL_TIMEOUT_MS = 30000;
const CLIENT_KEY = process.env.TIKTOK_CLIENT_KEY || 'bench_client_key';
const CLIENT_SECRET = process.env.TIKTOK_CLIENT_SECRET || 'bench_client_secret';
const calls = {};

// POSTs body (JSON, or a form when form is true) to path; resolves (never
// rejects) with {ok, sent, httpStatus, code, message, logId, data, raw, ms}.
// sent is false only when the request certainly did not leave (connection
// refused): anything else without an answer may have reached TikTok.
function callTikTok(path, token, body, form = false) {
  calls[path] = (calls[path] || 0) + 1;
  const payload = form ? new URLSearchParams(body).toString() : JSON.stringify(body);
  const headers = {
    'Content-Type': form ? 'application/x-www-form-urlencoded' : 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(payload),
  };
  if (token) headers.Authorization = `Bearer ${token}`;
  const started = performance.now();
  return new Promise((resolve) => {
    let done = false;
    // Settles once: the first of answer, error or timeout wins.
    const finish = (r) => {
      if (done) return;
      done = true;
      resolve({ ms: performance.now() - started, ...r });
    };
    const req = transport.request(new URL(path, apiBase), { method: 'POST', agent, headers, timeout: CALL_TIMEOUT_MS }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => finish({ ok: false, sent: true, code: 'transport', message: e.message }));
      res.on('end', () => {
        let json = null;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch (e) {
          return finish({ ok: false, sent: true, httpStatus: res.statusCode, code: 'bad_response', message: 'not JSON' });
        }
        // The envelope: error.code "ok" is success, whatever the HTTP status says;
        // OAuth answers flat.
        const err = json && typeof json.error === 'object' && json.error !== null ? json.error : null;
        const code = err ? err.code : (typeof json.error === 'string' ? json.error : (form ? 'ok' : 'bad_response'));
        const success = code === 'ok' && res.statusCode >= 200 && res.statusCode < 300;
        finish({
          ok: success, sent: true, httpStatus: res.statusCode, code,
          message: err ? err.message : json.error_description, logId: err ? err.log_id : json.log_id,
          data: err ? json.data : null, raw: json,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${CALL_TIMEOUT_MS} ms`)));
    req.on('error', (e) => finish({ ok: false, sent: e.code !== 'ECONNREFUSED', code: 'transport', message: e.message }));
    req.end(payload);
  });
}

// True when TikTok's answer means "try again later" (nothing was done).
function transient(r) {
  return !r.sent || r.code === 'rate_limit_exceeded' || (r.httpStatus >= 500 && r.httpStatus < 600);
}

// Why creator_info's data refuses post p, or null when p may go.
function creatorRefusal(p, data) {
  const options = (data && data.privacy_level_options) || [];
  if (!options.includes(p.privacy_level)) return `privacy_level ${p.privacy_level} is not offered to this creator`;
  if (data.comment_disabled && !p.disable_comment) return 'the creator has turned comments off';
  if (data.duet_disabled && !p.disable_duet) return 'the creator has turned duets off';
  if (data.stitch_disabled && !p.disable_stitch) return 'the creator has turned stitches off';
  return null;
}

// Runs fn in one transaction on db (ROLLBACK if it throws).
async function inTransaction(db, fn) {
  await db.query('BEGIN');
  try {
    const r = await fn();
    await db.query('COMMIT');
    return r;
  } catch (e) {
    await db.query('ROLLBACK');
    throw e;
  }
}

// At start: stale claims (a worker died) go back to the queue unless their
// init may have been sent, which makes them 'unknown' (never resent).
async function recover(db) {
  await db.query(`
    UPDATE worker.posts p
       SET status = CASE WHEN EXISTS (SELECT 1 FROM worker.call_log l
                                       WHERE l.post_id = p.id AND l.endpoint = 'video_init'
                                         AND l.outcome IN ('in_flight', 'unknown', 'ok'))
                         THEN 'unknown' ELSE 'scheduled' END,
           last_error = 'claim expired (worker stopped mid-batch)'
     WHERE p.status = 'sending' AND p.claimed_at < now() - interval '10 minutes'`);
}

// Claims up to n due posts (committed: status 'sending'), skipping posts
// other workers hold and accounts with 6 inits in the last minute.
async function claim(db, n) {
  const r = await db.query(`
    WITH due AS (
      SELECT p.id FROM worker.posts p
       WHERE p.status = 'scheduled' AND p.due_at <= now()
         AND (SELECT count(*) FROM worker.call_log l
               WHERE l.account_id = p.account_id AND l.endpoint = 'video_init'
                 AND l.created_at > now() - interval '1 minute') < 6
       ORDER BY p.due_at, p.id
       LIMIT $1
       FOR UPDATE OF p SKIP LOCKED)
    UPDATE worker.posts p
       SET status = 'sending', claimed_at = now(), attempts = p.attempts + 1
      FROM due, worker.accounts a
     WHERE p.id = due.id AND a.id = p.account_id
    RETURNING p.id, p.account_id, p.caption, p.video_url, p.privacy_level, p.disable_comment, p.disable_duet,
              p.disable_stitch, p.attempts, a.access_token, a.refresh_token,
              a.access_token_expires_at < now() + interval '5 minutes' AS needs_refresh`, [n]);
  return r.rows;
}

// Refreshes the tokens of the batch's accounts that expire within 5 minutes
// (OAuth rotates the refresh token: the new pair is stored in one statement).
async function refreshTokens(db, batch) {
  const stale = new Map();
  for (const p of batch) if (p.needs_refresh && p.refresh_token) stale.set(p.account_id, p.refresh_token);
  if (stale.size === 0) return;
  const ids = [...stale.keys()];
  const answers = await Promise.all(ids.map((id) => callTikTok('/v2/oauth/token/', null, {
    client_key: CLIENT_KEY, client_secret: CLIENT_SECRET, grant_type: 'refresh_token', refresh_token: stale.get(id),
  }, true)));
  const ok = answers.map((a, i) => [ids[i], a]).filter(([, a]) => a.ok && a.raw.access_token);
  if (ok.length > 0) {
    await db.query(`
      UPDATE worker.accounts a
         SET access_token = u.access_token, refresh_token = u.refresh_token,
             access_token_expires_at = now() + make_interval(secs => u.expires_in), updated_at = now()
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[]) u(id, access_token, refresh_token, expires_in)
       WHERE a.id = u.id`,
    [ok.map(([id]) => id), ok.map(([, a]) => a.raw.access_token), ok.map(([, a]) => a.raw.refresh_token),
      ok.map(([, a]) => a.raw.expires_in)]);
  }
  const fresh = new Map(ok.map(([id, a]) => [String(id), a.raw.access_token]));
  for (const p of batch) if (fresh.has(String(p.account_id))) p.access_token = fresh.get(String(p.account_id));
}

// Settles posts that stop: rows of [id, status, error]; 'scheduled' ones
// come back after an exponential backoff from their attempt count.
async function settleStopped(db, rows) {
  if (rows.length === 0) return;
  await db.query(`
    UPDATE worker.posts p
       SET status = u.status, last_error = u.error,
           due_at = CASE WHEN u.status = 'scheduled'
                         THEN now() + make_interval(secs => least(3600, 30 * power(2, p.attempts - 1)))
                         ELSE p.due_at END
      FROM unnest($1::bigint[], $2::text[], $3::text[]) u(id, status, error)
     WHERE p.id = u.id`,
  [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])]);
}

// The init request body for post p (a Direct Post of a video pulled from its URL).
function initBody(p) {
  return {
    post_info: {
      title: p.caption, privacy_level: p.privacy_level, disable_duet: p.disable_duet,
      disable_comment: p.disable_comment, disable_stitch: p.disable_stitch, video_cover_timestamp_ms: 1000,
      brand_content_toggle: false, brand_organic_toggle: false, is_aigc: false,
    },
    source_info: { source: 'PULL_FROM_URL', video_url: p.video_url },
  };
}

// Publishes one claimed batch: creator_info for all, then the inits of the
// posts it allows, C at once. Adds the posts' final states to tally.
async function publishBatch(db, batch, tally) {
  await refreshTokens(db, batch);

  const infos = await Promise.all(batch.map((p) => callTikTok('/v2/post/publish/creator_info/query/', p.access_token, {})));
  const going = [];
  const stopped = [];
  batch.forEach((p, i) => {
    const r = infos[i];
    if (!r.ok) stopped.push([p.id, transient(r) ? 'scheduled' : 'failed', `creator_info: ${r.code} ${r.message || ''}`.trim()]);
    else {
      const refusal = creatorRefusal(p, r.data);
      if (refusal) stopped.push([p.id, 'failed', refusal]);
      else going.push(p);
    }
  });

  // creator_info's outcomes, the refused posts, and the inits' "in flight"
  // rows, committed together before any init leaves.
  const inflight = await inTransaction(db, async () => {
    await db.query(`
      INSERT INTO worker.call_log (post_id, account_id, endpoint, outcome, http_status, error_code, log_id,
                                   duration_ms, finished_at)
      SELECT u.post_id, u.account_id, 'creator_info', CASE WHEN u.ok THEN 'ok' ELSE 'error' END, u.http_status,
             u.code, u.log_id, u.ms, now()
        FROM unnest($1::bigint[], $2::bigint[], $3::boolean[], $4::integer[], $5::text[], $6::text[],
                    $7::double precision[]) u(post_id, account_id, ok, http_status, code, log_id, ms)`,
    [batch.map((p) => p.id), batch.map((p) => p.account_id), infos.map((r) => r.ok),
      infos.map((r) => r.httpStatus ?? null), infos.map((r) => r.code), infos.map((r) => r.logId ?? null),
      infos.map((r) => r.ms)]);
    await settleStopped(db, stopped);
    if (going.length === 0) return [];
    const r = await db.query(`
      INSERT INTO worker.call_log (post_id, account_id, endpoint, outcome)
      SELECT u.post_id, u.account_id, 'video_init', 'in_flight'
        FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY u(post_id, account_id, n)
       ORDER BY u.n
      RETURNING id, post_id`, [going.map((p) => p.id), going.map((p) => p.account_id)]);
    const byPost = new Map(r.rows.map((row) => [String(row.post_id), row.id]));
    return going.map((p) => byPost.get(String(p.id)));
  });
  for (const s of stopped) tally[s[1]] = (tally[s[1]] || 0) + 1;
  if (going.length === 0) return;

  const inits = await Promise.all(going.map((p) => callTikTok('/v2/post/publish/video/init/', p.access_token, initBody(p))));

  // Each init's outcome, the posts' states and the publish records, together.
  const outcome = inits.map((r) => {
    if (r.ok && r.data && r.data.publish_id) return 'ok';
    if (!r.httpStatus && r.sent) return 'unknown';           // sent, no answer: maybe on TikTok
    return 'error';
  });
  const postStatus = inits.map((r, i) => {
    if (outcome[i] === 'ok') return 'posted';
    if (outcome[i] === 'unknown') return 'unknown';
    return transient(r) ? 'scheduled' : 'failed';
  });
  await inTransaction(db, async () => {
    await db.query(`
      UPDATE worker.call_log l
         SET outcome = u.outcome, http_status = u.http_status, error_code = u.code, log_id = u.log_id,
             publish_id = u.publish_id, duration_ms = u.ms, finished_at = now()
        FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[],
                    $7::double precision[]) u(id, outcome, http_status, code, log_id, publish_id, ms)
       WHERE l.id = u.id`,
    [inflight, outcome, inits.map((r) => r.httpStatus ?? null), inits.map((r) => r.code),
      inits.map((r) => r.logId ?? null), inits.map((r) => (r.data && r.data.publish_id) || null),
      inits.map((r) => r.ms)]);
    const posted = going.map((p, i) => [p, inits[i]]).filter((_, i) => outcome[i] === 'ok');
    if (posted.length > 0) {
      await db.query(`
        WITH u AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) u(post_id, account_id, publish_id)),
             p AS (UPDATE worker.posts p SET status = 'posted', posted_at = now(), publish_id = u.publish_id,
                                             last_error = NULL
                     FROM u WHERE p.id = u.post_id)
        INSERT INTO worker.publish_records (post_id, account_id, publish_id, endpoint)
        SELECT u.post_id, u.account_id, u.publish_id, 'video_init' FROM u`,
      [posted.map(([p]) => p.id), posted.map(([p]) => p.account_id), posted.map(([, r]) => r.data.publish_id)]);
    }
    await settleStopped(db, going.map((p, i) => [p.id, postStatus[i], `video_init: ${inits[i].code} ${inits[i].message || ''}`.trim()])
      .filter((_, i) => outcome[i] !== 'ok'));
  });
  postStatus.forEach((s) => { tally[s] = (tally[s] || 0) + 1; });
}

// Connects, then claims and publishes batches until nothing is due.
async function main() {
  const db = new Client({ application_name: 'bench-node-worker' });
  await db.connect();
  if (args.pidfile) {
    const r = await db.query('SELECT pg_backend_pid() AS pid');
    fs.writeFileSync(args.pidfile, `${r.rows[0].pid}\n`);
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await recover(db);
  const tally = {};
  let batches = 0;
  let claimed = 0;
  for (;;) {
    const batch = await claim(db, concurrency);
    if (batch.length === 0) break;
    batches += 1;
    claimed += batch.length;
    await publishBatch(db, batch, tally);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuTotal = process.cpuUsage();
  await db.end();
  agent.destroy();
  console.log(JSON.stringify({
    concurrency, batches, claimed, tally, calls, wall_s: Number(wall.toFixed(3)),
    cpu_user_s: cpu.user / 1e6, cpu_sys_s: cpu.system / 1e6,
    cpu_process_total_s: (cpuTotal.user + cpuTotal.system) / 1e6,
  }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
