-- TikTok's caps known when scheduling: the creator's Direct Posts a day
-- (15, or less when TikTok showed less), the inbox's 5 drafts in 24 hours,
-- and an unaudited app's rules; account_caps shows each account's use.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(29);

SELECT md5(random()::text) AS run \gset
-- A day no other test schedules on.
SELECT '2027-06-15 06:00+00'::timestamptz AS day \gset

CREATE FUNCTION pg_temp.schedule(account uuid, at timestamptz, privacy text DEFAULT 'SELF_ONLY', mode text DEFAULT 'direct')
RETURNS text LANGUAGE sql AS $$
    SELECT vs_test.sqlstate_of(format('SELECT vibescaling.schedule_post(%L, %L, %L, %L, %L)',
                                      vs_test.new_video('capped'), at, account, privacy, mode))
$$;

-- The daily cap: 15 Direct Posts of one account on one UTC day.
SELECT vs_test.new_account('capa_' || :'run') AS a \gset
SELECT is((SELECT count(*) FROM generate_series(1, 15) i
            WHERE pg_temp.schedule(:'a', :'day'::timestamptz + i * interval '10 minutes') = 'ok'), 15::bigint,
          '15 Direct Posts of one account scheduled on one day');
SELECT is(pg_temp.schedule(:'a', :'day'::timestamptz + interval '5 hours'), '53400',
          'the 16th on that day is refused when scheduled (53400), not when sent');
SELECT vs_test.new_video('capped message') AS m \gset
SELECT throws_like(format($$SELECT vibescaling.schedule_post(%L, %L, %L, 'SELF_ONLY')$$, :'m', :'day'::timestamptz + interval '6 hours', :'a'),
                   '%spam_risk_too_many_posts%', '... saying which of TikTok''s caps');
SELECT is(pg_temp.schedule(:'a', :'day'::timestamptz + interval '1 day'), 'ok', 'the next UTC day has room');
SELECT is(pg_temp.schedule(:'a', :'day'::timestamptz + interval '5 hours', 'SELF_ONLY', 'inbox'), 'ok',
          'an inbox upload does not count against the Direct Post cap');
SELECT is((SELECT direct_posts || '/' || daily_cap FROM vibescaling.account_caps
            WHERE tiktok_account_id = :'a' AND day = current_date), '0/15',
          'account_caps: today''s use of the cap (the test''s posts are on a later day)');

-- The inbox: 5 uploads in 24 hours.
SELECT vs_test.new_account('capi_' || :'run') AS i \gset
SELECT is((SELECT count(*) FROM generate_series(1, 5) n
            WHERE pg_temp.schedule(:'i', :'day'::timestamptz + n * interval '1 hour', 'SELF_ONLY', 'inbox') = 'ok'), 5::bigint,
          '5 inbox uploads in a day');
SELECT is(pg_temp.schedule(:'i', :'day'::timestamptz + interval '10 hours', 'SELF_ONLY', 'inbox'), '53400',
          'a 6th within 24 hours: refused (spam_risk_too_many_pending_share)');
SELECT is(pg_temp.schedule(:'i', :'day'::timestamptz + interval '1 day 2 hours', 'SELF_ONLY', 'inbox'), 'ok',
          '... 24 hours after the first, there is room again');

-- A cap TikTok showed: 3 Direct Posts, then spam_risk_too_many_posts.
SELECT vs_test.new_account('capl_' || :'run') AS l \gset
INSERT INTO vibescaling.dispatch_logs (tiktok_account_id, trigger, endpoint, outcome, http_status, created_at)
SELECT :'l', 'manual', 'video_init', 'success', 200, now() - interval '3 hours' + n * interval '10 minutes' FROM generate_series(1, 3) n;
INSERT INTO vibescaling.dispatch_logs (tiktok_account_id, trigger, endpoint, outcome, http_status, error_code, created_at)
VALUES (:'l', 'manual', 'video_init', 'failure', 403, 'spam_risk_too_many_posts', now() - interval '1 hour');
SELECT is((SELECT daily_cap || ' ' || cap_learned_from_tiktok FROM vibescaling.account_caps
            WHERE tiktok_account_id = :'l' AND day = current_date), '3 true',
          'after TikTok refused the 4th post of a day, the account''s cap is 3 (learned)');
SELECT is((SELECT count(*) FROM generate_series(1, 4) n
            WHERE pg_temp.schedule(:'l', :'day'::timestamptz + n * interval '10 minutes') = 'ok'), 3::bigint,
          '... and scheduling takes 3 a day for it, not 4');

-- Fan-out: a target on a full day is refused alone.
SELECT vs_test.new_video('fan-out under caps') AS fan \gset
SELECT vs_test.new_account('capf_' || :'run') AS f \gset
SELECT vibescaling.schedule_targets(:'fan', :'day'::timestamptz + interval '8 hours', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'a', 'privacy_level', 'SELF_ONLY'),
         jsonb_build_object('tiktok_account_id', :'f', 'privacy_level', 'SELF_ONLY'))) AS fr \gset
SELECT is((SELECT string_agg(coalesce(t #>> '{error,sqlstate}', 'scheduled'), ',' ORDER BY t->>'tiktok_account_id' = :'a')
             FROM jsonb_array_elements(:'fr'::jsonb #> '{data,targets}') t), 'scheduled,53400',
          'schedule_targets: the target whose account is at its cap that day is refused, the other scheduled');

-- An unaudited app: SELF_ONLY only, and 5 accounts posting a day.
SET vibescaling.app_audited = off;
SELECT '2027-07-20 06:00+00'::timestamptz AS uday \gset
SELECT vs_test.new_account('capu_' || :'run') AS u \gset
SELECT is(pg_temp.schedule(:'u', :'uday', 'PUBLIC_TO_EVERYONE'), '22023',
          'unaudited: a public post is refused (unaudited_client_can_only_post_to_private_accounts)');
SELECT is(pg_temp.schedule(:'u', :'uday', 'SELF_ONLY'), 'ok', '... SELF_ONLY is scheduled');
SELECT is((SELECT count(*) FROM generate_series(1, 4) n
            WHERE pg_temp.schedule(vs_test.new_account(format('capu%s_%s', n, :'run')), :'uday', 'SELF_ONLY') = 'ok'),
          4::bigint, '... 5 accounts posting that day in all');
SELECT is(pg_temp.schedule(vs_test.new_account('capu6_' || :'run'), :'uday', 'SELF_ONLY'), '53400',
          'a 6th account that day: refused (reached_active_user_cap)');
RESET vibescaling.app_audited;

-- Warnings: a post that leaves its day with little room is scheduled, and
-- its answer says so (TikTok's cap is shared by every app of the creator).
SELECT '2027-08-10 06:00+00'::timestamptz AS wday \gset
SELECT vs_test.new_account('capw_' || :'run') AS w \gset
SELECT is((SELECT count(*) FROM generate_series(1, 10) n
            WHERE pg_temp.schedule(:'w', :'wday'::timestamptz + n * interval '10 minutes') = 'ok'), 10::bigint,
          'warnings: 10 Direct Posts of a day');
SELECT vibescaling.schedule_post(vs_test.new_video('the 11th'), :'wday'::timestamptz + interval '3 hours', :'w', 'SELF_ONLY') AS w11 \gset
SELECT ok(NOT (:'w11'::jsonb ? 'warnings'), 'the 11th of 15 comes with no warning');
SELECT vibescaling.schedule_post(vs_test.new_video('the 12th'), :'wday'::timestamptz + interval '4 hours', :'w', 'SELF_ONLY') AS w12 \gset
SELECT is(:'w12'::jsonb #>> '{warnings,0,code}', 'near_daily_cap', 'the 12th (80 % of the cap) is scheduled with a near_daily_cap warning');
SELECT is(:'w12'::jsonb #>> '{data,status}', 'scheduled', '... and is scheduled');
SELECT ok(:'w12'::jsonb #>> '{warnings,0,message}' LIKE '%12 of its 15 Direct Posts a day on 2027-08-10%',
          '... saying how much of which day''s cap it takes');

-- caps_policy 'warn': a post over a cap is scheduled, with the cap's own code as a warning.
SET vibescaling.caps_policy = 'warn';
SELECT vibescaling.schedule_post(vs_test.new_video('the 16th'), :'day'::timestamptz + interval '7 hours', :'a', 'SELF_ONLY') AS over \gset
SELECT is(:'over'::jsonb #>> '{warnings,0,code}', 'spam_risk_too_many_posts',
          'caps_policy warn: the 16th Direct Post of a day is scheduled with a spam_risk_too_many_posts warning');
SELECT is(pg_temp.schedule(:'a', :'day'::timestamptz + interval '8 hours', 'PUBLIC_TO_EVERYONE'), 'ok', '... any privacy level while the app is audited');
SET vibescaling.app_audited = off;
SELECT is(pg_temp.schedule(:'a', :'day'::timestamptz + interval '9 hours', 'PUBLIC_TO_EVERYONE'), '22023',
          '... but an unaudited app''s public post is still refused: TikTok refuses it whatever it counts');
RESET vibescaling.app_audited;
RESET vibescaling.caps_policy;

-- The inbox: the 4th upload of 24 hours warns.
SELECT vs_test.new_account('capwi_' || :'run') AS wi \gset
SELECT count(*) FROM generate_series(1, 3) n
 WHERE pg_temp.schedule(:'wi', :'wday'::timestamptz + n * interval '1 hour', 'SELF_ONLY', 'inbox') = 'ok' \gset
SELECT is(vibescaling.schedule_post(vs_test.new_video('4th draft'), :'wday'::timestamptz + interval '5 hours', :'wi', 'SELF_ONLY', 'inbox')
          #>> '{warnings,0,code}', 'near_pending_share_limit', 'the 4th inbox upload of 24 hours: near_pending_share_limit');

-- Fan-out and CSV carry each target's and each line's warnings.
SELECT vibescaling.schedule_targets(vs_test.new_video('fan-out warned'), :'wday'::timestamptz + interval '6 hours', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'w', 'privacy_level', 'SELF_ONLY'),
         jsonb_build_object('tiktok_account_id', :'f', 'privacy_level', 'SELF_ONLY'))) AS fw \gset
SELECT is((SELECT string_agg(coalesce(t #>> '{warnings,0,code}', '-'), ',' ORDER BY t->>'tiktok_account_id' = :'w')
             FROM jsonb_array_elements(:'fw'::jsonb #> '{data,targets}') t), '-,near_daily_cap',
          'schedule_targets: the target on a nearly full day carries the warning, the other none');
SELECT vibescaling.import_schedule(format(E'caption,video_url,tiktok_account_id,privacy_level,scheduled_at\n'
                                          'csv one,https://verified.example/a.mp4,%s,SELF_ONLY,%s\n'
                                          'csv two,https://verified.example/b.mp4,%s,SELF_ONLY,%s\n',
                                          :'f', :'wday'::timestamptz + interval '7 hours',
                                          :'w', :'wday'::timestamptz + interval '8 hours')) AS cw \gset
SELECT is((SELECT string_agg((x->>'line') || ':' || (x->>'code'), ',') FROM jsonb_array_elements(:'cw'::jsonb -> 'warnings') x),
          '3:near_daily_cap', 'import_schedule: the warnings name their line');

-- The Analytics page's caps: each account with its cap and its 8 days (a
-- tenant of this test's own: the page shows the 100 busiest accounts).
UPDATE vibescaling.tiktok_accounts SET owner = 'caps_' || :'run' WHERE id IN (:'a', :'l');
SELECT vibescaling.analytics(now() - interval '1 hour', now(), 'UTC', 'caps_' || :'run') -> 'account_caps' AS caps \gset
SELECT is((SELECT (c->>'daily_cap') || ' ' || (c->>'cap_learned_from_tiktok') || ' ' || jsonb_array_length(c->'days')
             FROM jsonb_array_elements(:'caps'::jsonb) c WHERE c->>'tiktok_account_id' = :'l'), '3 true 8',
          'analytics caps: an account''s cap, learned or not, and today and the 7 coming days');
SELECT is((SELECT string_agg(d->>'direct_posts', ',' ORDER BY d->>'day')
             FROM jsonb_array_elements(:'caps'::jsonb) c, jsonb_array_elements(c->'days') d
            WHERE c->>'tiktok_account_id' = :'a'),
          (SELECT string_agg(direct_posts::text, ',' ORDER BY day) FROM vibescaling.account_caps WHERE tiktok_account_id = :'a'),
          '... each day''s Direct Posts as account_caps counts them');

SELECT * FROM finish();
