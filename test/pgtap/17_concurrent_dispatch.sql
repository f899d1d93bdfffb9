-- The concurrent dispatcher: dispatch_due_posts publishes due posts in
-- rounds whose calls go out together (_tiktok_call_many), at most
-- vibescaling.max_concurrent_requests at once over kept-alive connections,
-- with the same checks, logs and failure handling as one by one.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(45);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SET vibescaling.max_concurrent_requests = 4;
-- One session (no dispatch helpers) until the helpers' own part below: the
-- pool figures are this backend's, and its rounds take 4 posts.
SET vibescaling.dispatch_sessions = 1;

-- ---------------------------------------------------------------------------
-- A burst: 12 accounts with one post each, one account with three.
CREATE TEMP TABLE accts AS
SELECT i, 'cd' || i || '_' || :'run' AS open_id, vs_test.new_account('cd' || i || '_' || :'run') AS id
  FROM generate_series(1, 13) i;
CREATE TEMP TABLE burst AS
SELECT a.i, j, (vibescaling.schedule_post(vs_test.new_video(format('burst %s/%s', a.i, j)), now() + interval '10 minutes',
                                          a.id, 'SELF_ONLY') #>> '{data,id}')::uuid AS id
  FROM accts a, generate_series(1, CASE WHEN a.i = 13 THEN 3 ELSE 1 END) j;
-- (Scheduling asked creator_info once per account: count TikTok's calls from here.)
SELECT count(*) AS calls0 FROM accts a, LATERAL vs_test.sim_requests(a.open_id) r \gset
SELECT vibescaling.http_pool_stats() AS pool0 \gset
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT vibescaling.http_pool_stats() AS pool1 \gset

SELECT is((SELECT count(*) FROM vibescaling.posts p JOIN burst USING (id) WHERE p.status = 'posted'), 15::bigint,
          'the 15 due posts are all published');
SELECT is((SELECT count(*) FROM vibescaling.publish_records r JOIN burst b ON b.id = r.post_id), 15::bigint,
          '... each with one publish record');
SELECT is((SELECT count(*) FROM burst b
            WHERE (SELECT array_agg(l.endpoint || '/' || l.outcome || '/' || l.trigger ORDER BY l.id)
                     FROM vibescaling.dispatch_logs l WHERE l.post_id = b.id)
                  = ARRAY['creator_info/success/scheduler', 'video_init/success/scheduler']), 15::bigint,
          '... each post: one creator_info, then one video_init, both in dispatch_logs');
SELECT is((SELECT count(*) FROM accts a, LATERAL vs_test.sim_requests(a.open_id) r) - :calls0, 30::bigint,
          '... and TikTok saw exactly those 30 calls');
SELECT is((:'pool1'::jsonb->>'transfers')::bigint - (:'pool0'::jsonb->>'transfers')::bigint, 30::bigint,
          'the 30 calls went through the connection pool');
SELECT cmp_ok((:'pool1'::jsonb->>'connections_opened')::bigint - (:'pool0'::jsonb->>'connections_opened')::bigint,
              '<=', 4::bigint, '... which opened at most max_concurrent_requests (4) connections');
SELECT cmp_ok((:'pool1'::jsonb->>'connections_reused')::bigint - (:'pool0'::jsonb->>'connections_reused')::bigint,
              '>=', 26::bigint, '... and reused them for the other calls (keep-alive)');
SELECT is((SELECT count(DISTINCT p.posted_at) FROM vibescaling.posts p JOIN burst b USING (id) WHERE b.i = 13), 3::bigint,
          'an account''s three posts went out in three rounds (one post per account per round)');
SELECT is((SELECT max(n) FROM (SELECT count(*) AS n FROM vibescaling.posts p JOIN burst b USING (id) GROUP BY p.posted_at) x),
          4::bigint, '... and no round took more than max_concurrent_requests (4) posts');

-- The status poller: all 15 fetches as one batch through the same pool.
SELECT vibescaling.http_pool_stats() AS pool2 \gset
SELECT vibescaling._poll_publish_statuses(100, '2 hours', (SELECT array_agg(id) FROM accts)) AS polled \gset
SELECT vibescaling.http_pool_stats() AS pool3 \gset
SELECT is((:'polled'::jsonb->>'polled')::integer, 15, 'the poller asks TikTok about the 15 publishes');
SELECT is((:'pool3'::jsonb->>'transfers')::bigint - (:'pool2'::jsonb->>'transfers')::bigint, 15::bigint,
          '... all through the connection pool (one batch)');
SELECT is((:'pool3'::jsonb->>'connections_opened')::bigint - (:'pool2'::jsonb->>'connections_opened')::bigint, 0::bigint,
          '... on the connections the dispatcher kept alive');
SELECT is((SELECT count(*) FROM accts a, LATERAL vs_test.sim_requests(a.open_id, 'status_fetch') r), 15::bigint,
          '... 15 status fetches reached TikTok');

-- A second run finds nothing to do and sends nothing.
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT count(*) FROM accts a, LATERAL vs_test.sim_requests(a.open_id) r
            WHERE r->>'endpoint' <> 'status_fetch') - :calls0, 30::bigint,
          'a second run sends nothing');

-- ---------------------------------------------------------------------------
-- A mixed round: inbox (no creator_info), photo (content_init), a creator
-- whose creator_info fails with a 500 (retried later), a creator that turned
-- private (refused), an init dropped after TikTok took it (outcome unknown),
-- an upload from a large object (left to dispatch_due_uploads).
CREATE TEMP TABLE mix (label text PRIMARY KEY, open_id text, acct uuid, id uuid);
INSERT INTO mix (label, open_id)
SELECT l, 'mx' || l || '_' || :'run' FROM unnest(ARRAY['inbox', 'photo', 'flaky', 'private', 'dropped', 'upload']) l;
UPDATE mix SET acct = vs_test.new_account(open_id);
UPDATE mix SET id = CASE label WHEN 'photo' THEN vs_test.new_photo(2) ELSE vs_test.new_video('mix ' || label) END;
UPDATE vibescaling.posts SET video_url = NULL, video_lo = vs_test.new_lo(1048576)
 WHERE id = (SELECT id FROM mix WHERE label = 'upload');
SELECT count(vibescaling.schedule_post(m.id, now() + interval '10 minutes', m.acct,
                                       CASE WHEN m.label = 'private' THEN 'PUBLIC_TO_EVERYONE' ELSE 'SELF_ONLY' END,
                                       mode => CASE WHEN m.label = 'inbox' THEN 'inbox' ELSE 'direct' END)) AS scheduled
  FROM mix m \gset
SELECT vs_test.sim_post('/_sim/users/mxprivate_' || :'run', '{"private_account": true}') IS NOT NULL AS went_private;
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'creator_info', 'http_status', 500,
                        'error_code', 'internal_error', 'open_id', 'mxflaky_' || :'run')) IS NOT NULL AS armed;
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'action', 'drop',
                        'after_processing', true, 'open_id', 'mxdropped_' || :'run')) IS NOT NULL AS armed;
SET vibescaling.retry_base_delay = '1h';
CALL vibescaling.dispatch_due_posts(:'later');
CALL vibescaling.dispatch_due_uploads(:'later');
RESET vibescaling.retry_base_delay;

SELECT is((SELECT status FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'inbox')), 'posted',
          'inbox post: posted');
SELECT is((SELECT array_agg(endpoint ORDER BY id) FROM vibescaling.dispatch_logs
            WHERE post_id = (SELECT id FROM mix WHERE label = 'inbox')), ARRAY['inbox_video_init'],
          '... with one inbox init and no creator_info');
SELECT is((SELECT p.status || ' ' || r.endpoint FROM vibescaling.posts p JOIN vibescaling.publish_records r ON r.post_id = p.id
            WHERE p.id = (SELECT id FROM mix WHERE label = 'photo')), 'posted content_init',
          'photo post: posted through content_init');
SELECT is((SELECT status || ' ' || attempts || ' ' || (next_attempt_at > :'later'::timestamptz + interval '29 minutes')
             FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'flaky')), 'scheduled 1 true',
          'creator_info 500: still scheduled, attempt 1, retried after the backoff');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'flaky')),
               '^TikTok creator_info failed: internal_error .*\[SQLSTATE 08000\] \(attempt 1, will retry\)$',
               '... its last_error says so, as the one-by-one dispatcher words it');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs
            WHERE post_id = (SELECT id FROM mix WHERE label = 'flaky') AND endpoint LIKE '%init'), 0::bigint,
          '... and no init was sent for it');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'private')), 'failed',
          'creator went private: the post fails');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'private')),
               '^privacy_level PUBLIC_TO_EVERYONE is not offered to this creator \[SQLSTATE 22023\]$',
               '... with the reason');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'dropped')), 'publishing',
          'init dropped after TikTok took it: the post is publishing until settled');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'dropped')),
               'outcome is unknown', '... as of unknown outcome');
SELECT is((SELECT array_agg(error_code || ' ' || outcome_unknown ORDER BY id) FROM vibescaling.dispatch_logs
            WHERE post_id = (SELECT id FROM mix WHERE label = 'dropped') AND endpoint = 'video_init'),
          ARRAY['transport_error true'], '... its one init is logged as such (the in-flight row replaced)');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'upload')), 'posted',
          'upload from a large object: posted (by dispatch_due_uploads)');
SELECT ok((SELECT count(*) > 0 FROM vibescaling.dispatch_logs
            WHERE post_id = (SELECT id FROM mix WHERE label = 'upload') AND endpoint = 'upload_chunk' AND http_status = 201),
          '... its chunk reached TikTok');

-- The unknown outcome is never resent, however often the dispatcher runs.
SELECT is(vs_test.sqlstate_of(format($$UPDATE vibescaling.posts SET status = 'scheduled', next_attempt_at = NULL WHERE id = %L$$,
                                     (SELECT id FROM mix WHERE label = 'dropped'))),
          '55000', 'a publishing post cannot be rescheduled by hand');
UPDATE vibescaling.posts SET status = 'failed' WHERE id = (SELECT id FROM mix WHERE label = 'dropped');
UPDATE vibescaling.posts SET status = 'scheduled', next_attempt_at = NULL
 WHERE id = (SELECT id FROM mix WHERE label = 'dropped');
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('mxdropped_' || :'run', 'video_init')), 1::bigint,
          'failed then rescheduled by hand, the post of unknown outcome is still not sent again');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = (SELECT id FROM mix WHERE label = 'dropped')), 'publishing',
          '... the dispatcher puts it back to publishing');

-- ---------------------------------------------------------------------------
-- _tiktok_call_many itself.
SELECT vs_test.new_account('cmrl_' || :'run') AS rl \gset
SELECT vibescaling.add_account('cmgone_' || :'run', 'act.cmgone.' || :'run') AS gone \gset
UPDATE vibescaling.tiktok_accounts SET status = 'disconnected' WHERE id = :'gone';
SELECT vibescaling._tiktok_call_many(
         (SELECT jsonb_agg(c ORDER BY n) FROM (
             SELECT 0 AS n, jsonb_build_object('endpoint', 'creator_info', 'tiktok_account_id', :'gone', 'trigger', 'manual') AS c
             UNION ALL
             SELECT i, jsonb_build_object('endpoint', 'video_init', 'tiktok_account_id', :'rl', 'trigger', 'manual',
                                          'options', jsonb_build_object('privacy_level', 'SELF_ONLY',
                                                                        'video_url', 'https://verified.example/m.mp4'))
               FROM generate_series(1, 7) i) x)) AS many \gset
SELECT is(cardinality(:'many'::vibescaling._call_result[]), 8, 'eight calls, eight results (_call_result rows) in order');
SELECT is((:'many'::vibescaling._call_result[])[1].sqlstate, '55000',
          'a disconnected account''s call is refused without calling TikTok');
SELECT is((SELECT count(*) FROM unnest(:'many'::vibescaling._call_result[]) r WHERE r.ok), 6::bigint,
          'six inits for one account went through (TikTok allows 6 per window)');
SELECT is((SELECT count(*) FROM unnest(:'many'::vibescaling._call_result[]) r WHERE r.ok AND r.publish_id <> ''
                                                                              AND r.data->>'publish_id' = r.publish_id),
          6::bigint, '... each with its publish_id, also in its data');
SELECT is((:'many'::vibescaling._call_result[])[8].error_code || ' ' || (:'many'::vibescaling._call_result[])[8].sqlstate,
          'rate_limited 53000', '... the seventh was not sent: rate_limited');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('cmrl_' || :'run', 'video_init')), 6::bigint,
          '... TikTok saw six');
SELECT is((SELECT array_agg(error_code ORDER BY id) FROM vibescaling.dispatch_logs
            WHERE tiktok_account_id = :'rl' AND endpoint = 'video_init' AND outcome = 'failure'),
          ARRAY['rate_limited'], '... and the refusal is in dispatch_logs');
SELECT throws_ok($$SELECT vibescaling._tiktok_call_many('[{"endpoint": "oauth_token", "tiktok_account_id": null, "trigger": "t"}]')$$,
                 '22004', NULL, 'a call without an account is refused');

SELECT throws_ok($$SELECT vibescaling._tiktok_call_many('[{"endpoint": "creator_info", "tiktok_account_id": "00000000-0000-0000-0000-000000000001", "trigger": "bogus"}]')$$,
                 '22023', NULL, 'an unknown trigger is refused before anything is sent');

-- ---------------------------------------------------------------------------
-- A burst shared with dispatch helpers (vibescaling.dispatch_sessions): 12
-- accounts with two posts each, max_concurrent_requests 6 shared among 3
-- sessions (rounds of 2 posts each).
SET vibescaling.max_concurrent_requests = 6;
SET vibescaling.dispatch_sessions = 3;
CREATE TEMP TABLE helped AS
SELECT a.i, j, a.open_id, (vibescaling.schedule_post(vs_test.new_video(format('helped %s/%s', a.i, j)),
                                                    now() + interval '10 minutes', a.id, 'SELF_ONLY') #>> '{data,id}')::uuid AS id
  FROM (SELECT i, 'hp' || i || '_' || :'run' AS open_id, vs_test.new_account('hp' || i || '_' || :'run') AS id
          FROM generate_series(1, 12) i) a, generate_series(1, 2) j;
SELECT count(*) AS hcalls0 FROM (SELECT DISTINCT open_id FROM helped) h, LATERAL vs_test.sim_requests(h.open_id) r \gset
SELECT vibescaling.http_pool_stats() AS hpool0 \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT vibescaling.http_pool_stats() AS hpool1 \gset
SELECT is((SELECT count(*) FROM vibescaling.posts p JOIN helped USING (id) WHERE p.status = 'posted'), 24::bigint,
          'with helpers: the 24 due posts are all published');
SELECT is((SELECT count(*) FROM helped h
            WHERE (SELECT array_agg(l.endpoint || '/' || l.outcome ORDER BY l.id)
                     FROM vibescaling.dispatch_logs l WHERE l.post_id = h.id)
                  = ARRAY['creator_info/success', 'video_init/success']), 24::bigint,
          '... each with one creator_info and one init in dispatch_logs');
SELECT is((SELECT count(*) FROM (SELECT DISTINCT open_id FROM helped) h, LATERAL vs_test.sim_requests(h.open_id) r) - :hcalls0,
          48::bigint, '... and TikTok saw exactly those 48 calls');
SELECT is((SELECT count(DISTINCT l.backend_pid) FROM vibescaling.dispatch_logs l JOIN helped h ON h.id = l.post_id),
          3::bigint, '... made by three sessions (this one and two helpers)');
SELECT cmp_ok((:'hpool1'::jsonb->>'transfers')::bigint - (:'hpool0'::jsonb->>'transfers')::bigint, '<', 48::bigint,
              '... so this session made fewer than all of them');
SELECT is((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'vibescaling dispatch helper'), 0::bigint,
          '... and no helper outlives the run');
RESET vibescaling.dispatch_sessions;
SET vibescaling.max_concurrent_requests = 4;

SELECT * FROM finish();
