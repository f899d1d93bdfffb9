-- dispatch_due_posts: publishes due posts, one transaction each; posts it
-- cannot publish become failed with last_error. Runs outside a transaction
-- block (the procedure commits per post).
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(18);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vs_test.new_account('disp_' || :'run') AS acct \gset
SELECT vs_test.new_account('disppriv_' || :'run') AS priv \gset
SELECT vibescaling.add_account('dispgone_' || :'run', 'act.dispgone.' || :'run') AS gone \gset

CREATE TEMP TABLE due (label text, id uuid);
INSERT INTO due SELECT 'ok' || i, vs_test.new_video('scheduled ' || i) FROM generate_series(1, 3) i;
INSERT INTO due VALUES ('later', vs_test.new_video('later')),
                       ('unverified', vs_test.new_video('u', 'https://unverified.example/v.mp4')),
                       ('private', vs_test.new_video('p')),
                       ('gone', vs_test.new_video('g'));
UPDATE vibescaling.posts SET upload_method = 'pull' WHERE id = (SELECT id FROM due WHERE label = 'unverified');
SELECT count(*) AS scheduled FROM due d,
       vibescaling.schedule_post(d.id, now() + CASE WHEN d.label = 'later' THEN interval '2 hours' ELSE interval '10 minutes' END,
                                 CASE d.label WHEN 'private' THEN :'priv'::uuid WHEN 'gone' THEN :'gone'::uuid ELSE :'acct'::uuid END,
                                 'PUBLIC_TO_EVERYONE');
-- After scheduling: one account is disconnected, one creator goes private
-- (PUBLIC_TO_EVERYONE is no longer offered).
UPDATE vibescaling.tiktok_accounts SET status = 'disconnected' WHERE id = :'gone';
SELECT vs_test.sim_post('/_sim/users/disppriv_' || :'run', '{"private_account": true}') IS NOT NULL AS went_private;

-- Nothing is due yet.
CALL vibescaling.dispatch_due_posts();
SELECT is((SELECT count(*) FROM vibescaling.posts p JOIN due USING (id) WHERE p.status = 'scheduled'), 7::bigint,
          'before their time nothing is dispatched');

-- Fifteen minutes "later".
SELECT now() + interval '15 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT results_eq($$SELECT d.label, p.status FROM due d JOIN vibescaling.posts p USING (id) ORDER BY d.label$$,
                  $$VALUES ('gone', 'failed'), ('later', 'scheduled'), ('ok1', 'posted'), ('ok2', 'posted'),
                           ('ok3', 'posted'), ('private', 'failed'), ('unverified', 'failed')$$,
                  'due posts are posted or failed; the later one stays scheduled');
SELECT ok((SELECT bool_and(p.posted_at IS NOT NULL) FROM due d JOIN vibescaling.posts p USING (id) WHERE d.label LIKE 'ok%'),
          'posted_at is set on the dispatched posts');
SELECT is((SELECT count(*) FROM due d JOIN vibescaling.publish_records r ON r.post_id = d.id), 3::bigint,
          'three publish records');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l JOIN due d ON d.id = l.post_id
            WHERE d.label LIKE 'ok%' AND l.trigger = 'scheduler' AND l.outcome = 'success'), 6::bigint,
          'creator_info + init per posted post, logged with trigger scheduler');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = (SELECT id FROM due WHERE label = 'unverified')),
               '^TikTok video_init failed: url_ownership_unverified \(log_id .+\) \[SQLSTATE 42501\]$',
               'a TikTok refusal fails the post with TikTok''s code, log_id and the SQLSTATE');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = (SELECT id FROM due WHERE label = 'private')),
               'privacy_level PUBLIC_TO_EVERYONE is not offered to this creator',
               'dispatch re-checks creator_info: a privacy level the creator lost fails the post');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('disppriv_' || :'run', 'video_init')), 0::bigint,
          '... before any init');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = (SELECT id FROM due WHERE label = 'gone')),
               'is disconnected, it cannot publish',
               'a post whose account was disconnected fails with a clear reason');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l JOIN due d ON d.id = l.post_id WHERE d.label = 'gone'),
          0::bigint, '... without calling TikTok');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l JOIN due d ON d.id = l.post_id WHERE d.label = 'later'),
          0::bigint, 'the later post made no call');

-- Running again finds nothing new to do.
SELECT count(*) AS before FROM vs_test.sim_requests('disp_' || :'run') \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('disp_' || :'run')), :'before'::bigint,
          'a second run calls TikTok for nothing');

-- A failed post can be fixed and scheduled again.
UPDATE vibescaling.posts SET video_url = 'https://verified.example/fixed.mp4' WHERE id = (SELECT id FROM due WHERE label = 'unverified');
SELECT lives_ok(format($$SELECT vibescaling.schedule_post(%L, now() + interval '6 minutes', %L, 'SELF_ONLY')$$,
                       (SELECT id FROM due WHERE label = 'unverified'), :'acct'),
                'a failed post can be rescheduled');
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = (SELECT id FROM due WHERE label = 'unverified')), 'posted',
          '... and is then published');

-- A run inside a transaction block cannot commit its rounds: it says so
-- (2D000) before it sends anything, instead of after a round's calls.
SELECT vs_test.new_account('intx_' || md5(random()::text)) AS intx_acct \gset
SELECT vs_test.new_video('in a transaction block') AS intx_post \gset
SELECT vibescaling.schedule_post(:'intx_post', now() + interval '10 minutes', :'intx_acct', 'SELF_ONLY') IS NOT NULL AS scheduled;
SELECT throws_ok(format('CALL vibescaling.dispatch_due_posts(%L)', now() + interval '11 minutes'), '2D000', NULL,
                 'dispatch_due_posts in a transaction block: 2D000');
SELECT throws_ok(format('CALL vibescaling.dispatch_due_uploads(%L)', now() + interval '11 minutes'), '2D000', NULL,
                 'dispatch_due_uploads too');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'intx_post'), 0::bigint,
          '... before any call to TikTok');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'intx_post'), 'scheduled', '... the post is still scheduled');
-- Not left due for the suites after this one.
SELECT vibescaling.cancel_post(:'intx_post') IS NOT NULL AS cancelled;

SELECT * FROM finish();
