-- One post to many accounts: publish_targets and schedule_targets. Each
-- target is a post of its own (parent_id), with its own options, state,
-- publish record and logs; a failure or an unknown outcome on one target
-- never resends another; publish_status reports the post and each target.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(29);

SELECT md5(random()::text) AS run \gset
SELECT vs_test.new_account('tga_' || :'run') AS a \gset
SELECT vs_test.new_account('tgb_' || :'run') AS b \gset
SELECT vs_test.new_account('tgc_' || :'run') AS c \gset
SELECT vs_test.new_video('campaign ' || :'run') AS post \gset

-- TikTok refuses c's init (its daily cap).
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'http_status', 403,
         'error_code', 'spam_risk_too_many_posts', 'open_id', 'tgc_' || :'run')) IS NOT NULL AS armed \gset
SELECT vibescaling.publish_targets(:'post', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'a', 'privacy_level', 'SELF_ONLY'),
         jsonb_build_object('tiktok_account_id', :'b', 'privacy_level', 'PUBLIC_TO_EVERYONE', 'caption', 'B''s own words',
                            'disable_duet', true),
         jsonb_build_object('tiktok_account_id', :'c', 'privacy_level', 'SELF_ONLY'))) AS r \gset
SELECT is(jsonb_array_length(:'r'::jsonb #> '{data,targets}'), 3, 'publish_targets answers for each of the 3 targets');
SELECT is((SELECT count(*) FROM jsonb_array_elements(:'r'::jsonb #> '{data,targets}') t WHERE t ? 'publish_id'), 2::bigint,
          '... two published, each with its publish_id');
SELECT is((SELECT t #>> '{error,sqlstate}' FROM jsonb_array_elements(:'r'::jsonb #> '{data,targets}') t
            WHERE t->>'tiktok_account_id' = :'c'), '53000', '... and c''s refusal is its own answer (spam_risk_too_many_posts)');
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE parent_id = :'post'), 3::bigint, 'each target is a post of its own');
SELECT is((SELECT string_agg(status, ',' ORDER BY tiktok_account_id = :'c', status) FROM vibescaling.posts WHERE parent_id = :'post'),
          'posted,posted,draft', '... a and b posted, c still a draft');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE parent_id = :'post' AND tiktok_account_id = :'c'),
               'spam_risk_too_many_posts', '... with the reason');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'post'), 'draft', 'the post itself holds the content: a draft');
SELECT is((SELECT count(*) FROM vibescaling.publish_records r JOIN vibescaling.posts t ON t.id = r.post_id
            WHERE t.parent_id = :'post'), 2::bigint, 'each published target has its publish record');

-- What TikTok got: each target's own options.
SELECT is((SELECT r #>> '{body,post_info,title}' || '|' || (r #>> '{body,post_info,privacy_level}') || '|' || (r #>> '{body,post_info,disable_duet}')
             FROM vs_test.sim_requests('tgb_' || :'run', 'video_init') r),
          'B''s own words|PUBLIC_TO_EVERYONE|true', 'b''s init carries b''s caption, privacy level and toggles');
SELECT is((SELECT r #>> '{body,post_info,title}' FROM vs_test.sim_requests('tga_' || :'run', 'video_init') r),
          'campaign ' || :'run', 'a''s carries the post''s caption');

-- The status, as a whole and per target.
SELECT vibescaling.publish_status(:'post') AS s \gset
SELECT is(:'s'::jsonb #>> '{data,status}', 'partial', 'publish_status of the post: partial (two of three posted)');
SELECT is(jsonb_array_length(:'s'::jsonb #> '{data,targets}'), 3, '... with every target');
SELECT is((SELECT count(*) FROM jsonb_array_elements(:'s'::jsonb #> '{data,targets}') t
            WHERE t->>'publish_id' IS NOT NULL AND t->>'status' IN ('processing', 'published')), 2::bigint,
          '... each published one with TikTok''s status');

-- Again for c, once its cap lifted: its draft target is reused and sent; a and b are not sent again.
SELECT vibescaling.publish_targets(:'post', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'c', 'privacy_level', 'SELF_ONLY'))) AS r2 \gset
SELECT ok((:'r2'::jsonb #> '{data,targets,0}') ? 'publish_id', 'c''s target, sent again, is published');
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE parent_id = :'post'), 3::bigint, '... through the same target post');
SELECT vibescaling.publish_targets(:'post', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'a', 'privacy_level', 'SELF_ONLY'))) AS r3 \gset
SELECT is(:'r3'::jsonb #>> '{data,targets,0,error,sqlstate}', '55000', 'a target already posted is refused (55000)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('tga_' || :'run', 'video_init')), 1::bigint, '... and a got one init');
SELECT is(vibescaling.publish_status(:'post') #>> '{data,status}', 'posted', 'every target posted: the post is posted');

-- An unknown outcome on one target resends nothing, there or elsewhere.
SELECT vs_test.new_account('tgd_' || :'run') AS d \gset
SELECT vs_test.new_account('tge_' || :'run') AS e \gset
SELECT vs_test.new_video('second campaign ' || :'run') AS post2 \gset
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'action', 'drop',
         'after_processing', true, 'open_id', 'tgd_' || :'run')) IS NOT NULL AS armed \gset
SELECT vibescaling.publish_targets(:'post2', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'d', 'privacy_level', 'SELF_ONLY'),
         jsonb_build_object('tiktok_account_id', :'e', 'privacy_level', 'SELF_ONLY'))) AS r4 \gset
SELECT ok((SELECT t #>> '{error,message}' FROM jsonb_array_elements(:'r4'::jsonb #> '{data,targets}') t
            WHERE t->>'tiktok_account_id' = :'d') LIKE '%outcome is unknown%', 'd''s init has an unknown outcome');
SELECT ok((SELECT t ? 'publish_id' FROM jsonb_array_elements(:'r4'::jsonb #> '{data,targets}') t
            WHERE t->>'tiktok_account_id' = :'e'), '... e is published all the same');
SELECT is(vibescaling.publish_targets(:'post2', jsonb_build_array(
            jsonb_build_object('tiktok_account_id', :'d', 'privacy_level', 'SELF_ONLY'))) #>> '{data,targets,0,error,sqlstate}',
          '55000', 'd sent again: refused, it may already be on TikTok');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('tgd_' || :'run', 'video_init'))
          || '/' || (SELECT count(*) FROM vs_test.sim_requests('tge_' || :'run', 'video_init')), '1/1',
          '... one init each at TikTok');

-- Scheduled for several accounts, each at its time; the dispatcher sends each alone.
SELECT vs_test.new_video('scheduled campaign ' || :'run') AS post3 \gset
SELECT vibescaling.schedule_targets(:'post3', now() + interval '10 minutes', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'a', 'privacy_level', 'SELF_ONLY'),
         jsonb_build_object('tiktok_account_id', :'b', 'privacy_level', 'SELF_ONLY',
                            'scheduled_at', now() + interval '2 hours'))) AS r5 \gset
SELECT is((SELECT string_agg(status || ' ' || (scheduled_at > now() + interval '1 hour'), ',' ORDER BY scheduled_at)
             FROM vibescaling.posts WHERE parent_id = :'post3'), 'scheduled false,scheduled true',
          'schedule_targets: each target scheduled, at its own time');
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT string_agg(status, ',' ORDER BY scheduled_at) FROM vibescaling.posts WHERE parent_id = :'post3'),
          'posted,scheduled', 'the dispatcher sends the target that is due, not the other');

-- The post itself is not published or scheduled once it has targets; bad targets are refused.
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'post3', :'c')), '55000',
          'publish_post of a post with targets: 55000');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_targets(%L, '[]')$$, :'post3')), '22023',
          'no targets: 22023');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_targets(%L, %L)$$, :'post3',
            jsonb_build_array(jsonb_build_object('tiktok_account_id', :'c', 'privacy_level', 'SELF_ONLY', 'colour', 'red')))),
          '22023', 'an unknown target option: 22023');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_targets(%L, %L)$$, :'post3',
            jsonb_build_array(jsonb_build_object('tiktok_account_id', :'c', 'privacy_level', 'SELF_ONLY'),
                              jsonb_build_object('tiktok_account_id', :'c', 'privacy_level', 'SELF_ONLY')))),
          '22023', 'one account twice: 22023');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_targets(%L, '[{"privacy_level": "SELF_ONLY"}]')$$, :'post3')),
          '22004', 'a target without its account: 22004');

SELECT * FROM finish();
