-- The browser test's data: a demo burst for two tenants through the real
-- code paths (publish_post, the dispatcher, TikTok's refusals from the
-- simulator), plus the states the page shows: posts due later, an account
-- to authorise again, an init of unknown outcome. psql variables: run.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT 'acme-' || :'run' AS a, 'globex-' || :'run' AS b \gset

-- Accounts: six of acme's, one of globex's (TikTok allows 6 inits a minute
-- per account: the posts below stay under it).
CREATE TABLE public.browser_accounts AS
SELECT vs_test.new_account(format('%s_%s_%s', t.owner, i, :'run')) AS id, t.owner, i
  FROM (VALUES (:'a', 6), (:'b', 1)) AS t(owner, n), generate_series(1, t.n) i;
UPDATE vibescaling.tiktok_accounts a SET owner = b.owner, display_name = format('%s creator %s', split_part(b.owner, '-', 1), b.i)
  FROM public.browser_accounts b WHERE a.id = b.id;

-- Published now: 18 posts of acme's, 3 per account (the third of its
-- first account to the inbox), 5 of globex's.
CREATE TABLE public.browser_posts AS
SELECT vs_test.new_video(format('%s post %s', split_part(a.owner, '-', 1), g)) AS id, a.id AS acct, a.owner, g
  FROM public.browser_accounts a, generate_series(1, CASE WHEN a.owner = :'a' THEN 3 ELSE 5 END) g;
UPDATE vibescaling.posts p SET owner = b.owner FROM public.browser_posts b WHERE p.id = b.id;
SELECT count(vibescaling.publish_post(id, acct, 'SELF_ONLY', mode => CASE WHEN g = 3 AND owner = :'a' AND acct = (SELECT id FROM public.browser_accounts WHERE owner = :'a' AND i = 1)
                                                     THEN 'inbox' ELSE 'direct' END))
       AS published
  FROM public.browser_posts ORDER BY 1;

-- TikTok refusing some of acme's: 3 creator_info answers of 500, 2 inits of
-- spam_risk_too_many_posts (each publish raises; the calls are logged).
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'creator_info', 'http_status', 500,
                        'error_code', 'internal_error', 'count', 3, 'open_id', format('%s_1_%s', :'a', :'run'))) IS NOT NULL AS armed;
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'http_status', 403,
                        'error_code', 'spam_risk_too_many_posts', 'count', 2, 'open_id', format('%s_2_%s', :'a', :'run'))) IS NOT NULL AS armed;
CREATE TABLE public.browser_refused AS
SELECT vs_test.new_video('acme refused ' || g) AS id, a.id AS acct
  FROM public.browser_accounts a, generate_series(1, 3) g WHERE a.owner = :'a' AND a.i IN (1, 2) AND (a.i = 1 OR g <= 2);
UPDATE vibescaling.posts p SET owner = :'a' FROM public.browser_refused r WHERE p.id = r.id;
SELECT count(vs_test.sqlstate_of(format('SELECT vibescaling.publish_post(%L, %L, %L)', id, acct, 'SELF_ONLY'))) AS tried
  FROM public.browser_refused;

-- A burst through the dispatcher: 8 of acme's posts due a minute ago, on
-- its accounts 3 to 6.
CREATE TABLE public.browser_burst AS
SELECT vs_test.new_video('acme burst ' || g) AS id, a.id AS acct
  FROM public.browser_accounts a, generate_series(1, 2) g WHERE a.owner = :'a' AND a.i >= 3;
UPDATE vibescaling.posts p SET owner = :'a' FROM public.browser_burst r WHERE p.id = r.id;
SELECT count(vibescaling.schedule_post(id, now() + interval '10 minutes', acct, 'SELF_ONLY')) FROM public.browser_burst;
SELECT vs_test.make_due(id) FROM public.browser_burst;
CALL vibescaling.dispatch_due_posts();

-- Later: one post of each account due in the next hours.
CREATE TABLE public.browser_later AS
SELECT vs_test.new_video(format('%s later %s', split_part(a.owner, '-', 1), a.i)) AS id, a.id AS acct, a.owner, a.i
  FROM public.browser_accounts a;
UPDATE vibescaling.posts p SET owner = l.owner FROM public.browser_later l WHERE p.id = l.id;
-- (Account 2's a day later: TikTok refused its init above with
-- spam_risk_too_many_posts, so scheduling holds it to the 3 Direct Posts it
-- has today.)
SELECT count(vibescaling.schedule_post(id, now() + (i || ' hours')::interval + CASE WHEN i = 2 AND owner = :'a' THEN interval '1 day'
                                                                                   ELSE interval '0' END,
                                       acct, 'SELF_ONLY')) FROM public.browser_later;

-- Caps: Direct Posts of acme's third account on coming UTC days, from
-- 10:00 UTC (so more than a day ahead, whenever this runs), under the
-- default cap of 15 (vibescaling.max_posts_per_account_day): 11 two days
-- on (under 80 % of it), 12 three days on (80 %: near), 15 four days on
-- (full). Its second account's cap is the 3 TikTok showed (above).
CREATE TABLE public.browser_caps AS
SELECT vs_test.new_video(format('acme caps in %s days %s', t.d, g)) AS id, a.id AS acct, t.d, g
  FROM public.browser_accounts a, (VALUES (2, 11), (3, 12), (4, 15)) AS t(d, n), generate_series(1, t.n) g
 WHERE a.owner = :'a' AND a.i = 3;
UPDATE vibescaling.posts p SET owner = :'a' FROM public.browser_caps c WHERE p.id = c.id;
SELECT count(vibescaling.schedule_post(id, (date_trunc('day', now() AT TIME ZONE 'UTC') + d * interval '1 day'
                                            + interval '10 hours' + g * interval '10 minutes') AT TIME ZONE 'UTC',
                                       acct, 'SELF_ONLY')) AS scheduled
  FROM (SELECT * FROM public.browser_caps ORDER BY d, g) c;

-- acme's sixth account must be authorised again; an init of acme's has an
-- unknown outcome (sent two hours ago, no answer read).
UPDATE vibescaling.tiktok_accounts SET status = 'needs_reauth', status_reason = 'refresh token expired'
 WHERE id = (SELECT id FROM public.browser_accounts WHERE owner = :'a' AND i = 6);
SELECT vs_test.new_video('acme unknown outcome') AS unknown_post \gset
UPDATE vibescaling.posts SET owner = :'a', tiktok_account_id = (SELECT id FROM public.browser_accounts WHERE owner = :'a' AND i = 1)
 WHERE id = :'unknown_post';
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, error_code, outcome_unknown, created_at)
SELECT :'unknown_post', tiktok_account_id, 'manual', 'video_init', 'failure', 'timeout', true, now() - interval '2 hours'
  FROM vibescaling.posts WHERE id = :'unknown_post';

-- After the publish: snapshots of two of acme's posts (two each, an hour
-- apart) and of its first account's followers over three days, as
-- collect_metrics stores them; and one of acme's publishes TikTok never
-- confirmed.
INSERT INTO vibescaling.post_metrics (publish_record_id, post_id, tiktok_account_id, video_id, view_count, like_count,
                                      comment_count, share_count, owner, taken_at)
SELECT r.id, r.post_id, r.tiktok_account_id, 7300000000000000000 + r.n, 1000 * g * r.n, 100 * g, 10 * g, g, :'a',
       now() - (3 - g) * interval '1 hour'
  FROM (SELECT r.*, row_number() OVER (ORDER BY r.id) AS n
          FROM vibescaling.publish_records r JOIN public.browser_posts b ON b.id = r.post_id
         WHERE b.owner = :'a' ORDER BY r.id LIMIT 2) r, generate_series(1, 2) g;
INSERT INTO vibescaling.account_metrics (tiktok_account_id, follower_count, following_count, likes_count, video_count,
                                         owner, taken_at)
SELECT a.id, 5000 + 10 * d, 12, 300, 3, a.owner, now() - d * interval '1 day'
  FROM public.browser_accounts a, generate_series(0, 2) d WHERE a.owner = :'a' AND a.i = 1;
UPDATE vibescaling.publish_records SET status = 'unconfirmed', fail_reason = 'no final status from TikTok after 02:00:00'
 WHERE id = (SELECT r.id FROM vibescaling.publish_records r JOIN public.browser_posts b ON b.id = r.post_id
              WHERE b.owner = :'a' ORDER BY r.id DESC LIMIT 1);
