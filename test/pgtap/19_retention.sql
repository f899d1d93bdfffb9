-- Bounded logs: dispatch_logs and webhook_events are partitioned by week;
-- maintain_logs creates the coming weeks' partitions and drops those past
-- vibescaling.log_retention, keeping what the extension still needs: the
-- rows behind an open post's state and unsettled unknown-outcome inits.
-- A step whose lock is not granted within vibescaling.log_lock_timeout
-- gives up instead of holding dispatch up.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(29);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vs_test.new_account('ret_' || :'run') AS acct \gset

------------------------------------------------------------------------------
-- 1. The setting.
------------------------------------------------------------------------------
SELECT is(current_setting('vibescaling.log_retention'), '90 days', 'vibescaling.log_retention defaults to 90 days');
SELECT is(vs_test.sqlstate_of($$SET vibescaling.log_retention = '3 days'$$), '22023',
          'a retention under 7 days is refused (TikTok redelivers webhooks for 72 h)');
SELECT is(vs_test.sqlstate_of($$SET vibescaling.log_retention = 'soon'$$), '22023', 'a value that is no interval is refused');
SELECT lives_ok($$SET vibescaling.log_retention = '1 mon'; SET vibescaling.log_retention = 'P30D';
                  RESET vibescaling.log_retention$$, 'months and ISO 8601 durations are accepted');

------------------------------------------------------------------------------
-- 2. maintain_logs creates this week's and the coming weeks' partitions,
--    and rows land in their week's partition.
------------------------------------------------------------------------------
CALL vibescaling.maintain_logs();
SELECT ok((SELECT count(*) FROM vibescaling.log_partitions
            WHERE log = 'vibescaling.dispatch_logs'::regclass AND upper_bound > now()) >= 3,
          'dispatch_logs has partitions for this week and the next two');
SELECT ok((SELECT count(*) FROM vibescaling.log_partitions
            WHERE log = 'vibescaling.webhook_events'::regclass AND upper_bound > now()) >= 3,
          '... and so has webhook_events');
INSERT INTO vibescaling.dispatch_logs (trigger, endpoint, outcome) VALUES ('manual', 'probe_' || :'run', 'success')
RETURNING tableoid::regclass::text AS probe_partition \gset
SELECT is(:'probe_partition', 'vibescaling.dispatch_logs_' || to_char(vibescaling._log_week(now()) AT TIME ZONE 'UTC', 'YYYYMMDD'),
          'a row written now lands in this week''s partition');
SELECT is(pg_catalog.pg_get_userbyid(c.relowner), pg_catalog.pg_get_userbyid(p.relowner),
          'the partitions belong to the log''s owner')
  FROM pg_class c, pg_class p WHERE c.oid = :'probe_partition'::regclass AND p.oid = 'vibescaling.dispatch_logs'::regclass;

SELECT is(ARRAY(SELECT DISTINCT p.partition::text FROM vibescaling.log_partitions p JOIN pg_class c ON c.oid = p.partition,
                        aclexplode(c.relacl) a
                  WHERE a.grantee = 0 OR pg_get_userbyid(a.grantee) LIKE 'vibescaling\_%'),
          '{}'::text[], 'neither PUBLIC nor the HTTP API''s roles have any right on a partition (reading one directly would bypass row level security)');

------------------------------------------------------------------------------
-- 3. An old week: what goes and what stays when its partition is dropped.
------------------------------------------------------------------------------
SELECT vibescaling._log_week(now() - interval '200 days') AS old_week \gset
SELECT ok(vibescaling._create_log_partition('vibescaling.dispatch_logs', :'old_week'), 'a partition for a week 200 days ago');
SELECT partition AS old_partition FROM vibescaling._log_partition_bounds('vibescaling.dispatch_logs') WHERE lower_bound = :'old_week' \gset

CREATE TEMP TABLE old_posts AS
SELECT vs_test.new_video('posted ' || :'run') AS posted,
       vs_test.new_video('draft sent ' || :'run') AS draft_sent,
       vs_test.new_video('unsettled ' || :'run') AS unsettled,
       vs_test.new_video('settled ' || :'run') AS settled,
       vs_test.new_video('failed upload ' || :'run') AS failed_upload;
-- Set the states straight in the table, as the publisher would have (the checks of the posts trigger are not the subject).
ALTER TABLE vibescaling.posts DISABLE TRIGGER USER;
UPDATE vibescaling.posts SET status = 'posted', posted_at = now() - interval '199 days'
 WHERE id IN (SELECT posted FROM old_posts UNION ALL SELECT unsettled FROM old_posts UNION ALL SELECT settled FROM old_posts);
UPDATE vibescaling.posts SET status = 'failed' WHERE id = (SELECT failed_upload FROM old_posts);
-- ... and created that week (no call for a post is older than the post).
UPDATE vibescaling.posts SET created_at = :'old_week'
 WHERE id IN (SELECT unnest(ARRAY[posted, draft_sent, unsettled, settled, failed_upload]) FROM old_posts);
ALTER TABLE vibescaling.posts ENABLE TRIGGER USER;

CREATE TEMP TABLE old_rows (label text, id bigint, keep boolean);
-- Rows of that week; error_message carries each one's label.
WITH wanted (label, keep, post_id, account_id, trig, endpoint, outcome, unknown, http_status, publish_id, bytes) AS (
    SELECT v.* FROM old_posts o, LATERAL (VALUES
        ('posted post''s init', false, o.posted, NULL::uuid, 'manual', 'video_init', 'success', false, 200, 'v_pub_old_' || :'run', NULL::bigint),
        ('draft''s accepted init', true, o.draft_sent, NULL, 'manual', 'video_init', 'success', false, 200, 'v_pub_draft_' || :'run', NULL),
        ('unsettled unknown init of a posted post', true, o.unsettled, NULL, 'manual', 'video_init', 'failure', true, NULL, NULL, NULL),
        ('settled unknown init', false, o.settled, NULL, 'manual', 'video_init', 'failure', true, NULL, NULL, NULL),
        ('failed post''s upload chunk', true, o.failed_upload, NULL, 'manual', 'upload_chunk', 'success', false, 206, 'v_pub_up_' || :'run', 1048576),
        ('draft''s creator_info', false, o.draft_sent, NULL, 'manual', 'creator_info', 'success', false, 200, NULL, NULL),
        ('token refresh', false, NULL, :'acct'::uuid, 'refresh', 'oauth_token', 'success', false, 200, NULL, NULL),
        ('deleted post''s init', false, gen_random_uuid(), NULL, 'manual', 'video_init', 'failure', true, NULL, NULL, NULL))
        v(label, keep, post_id, account_id, trig, endpoint, outcome, unknown, http_status, publish_id, bytes)
), ins AS (
    INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, outcome_unknown,
                                           http_status, publish_id, uploaded_bytes, error_message, created_at)
    SELECT w.post_id, w.account_id, w.trig, w.endpoint, w.outcome, w.unknown, w.http_status, w.publish_id, w.bytes, w.label,
           :'old_week'::timestamptz + interval '1 day'
      FROM wanted w
    RETURNING id, error_message
)
INSERT INTO old_rows SELECT w.label, ins.id, w.keep FROM ins JOIN wanted w ON w.label = ins.error_message;
-- The settlement of the settled post came later (this week), deciding on its init.
INSERT INTO vibescaling.settlements (post_id, settled_through, on_tiktok, decided_by)
SELECT o.settled, r.id, false, 'operator' FROM old_posts o, old_rows r WHERE r.label = 'settled unknown init';

SELECT is((SELECT count(*) FROM old_rows r JOIN vibescaling.dispatch_logs l ON l.id = r.id AND l.tableoid = :'old_partition'::regclass),
          8::bigint, 'eight rows of that week are in its partition');
SELECT is(vs_test.sqlstate_of(format('SELECT vibescaling._drop_log_partition(%L, %L)', 'vibescaling.dispatch_logs', :'probe_partition')),
          '55000', 'a partition with rows newer than the retention period is not dropped');

-- Another session reads the log in an open transaction: detaching waits
-- for it, at most vibescaling.log_lock_timeout, then gives up.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('reader', format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
                                       split_part(current_setting('unix_socket_directories'), ',', 1))) AS connected \gset
SELECT dblink_exec('reader', 'BEGIN') AS begun \gset
SELECT * FROM dblink('reader', 'SELECT count(*) FROM vibescaling.dispatch_logs') AS t(n bigint) \gset
SET vibescaling.log_lock_timeout = '100ms';
SELECT is(vibescaling._drop_log_partition('vibescaling.dispatch_logs', :'old_partition'), NULL,
          'with a reader holding the log, the drop gives up after log_lock_timeout (NULL: left to the next run)');
SELECT is((SELECT count(*) FROM old_rows r JOIN vibescaling.dispatch_logs l ON l.id = r.id AND l.tableoid = :'old_partition'::regclass),
          8::bigint, '... and the partition is still there, whole');
SELECT dblink_exec('reader', 'COMMIT') AS committed \gset
SELECT dblink_disconnect('reader') AS disconnected \gset
RESET vibescaling.log_lock_timeout;

SELECT is(vibescaling._drop_log_partition('vibescaling.dispatch_logs', :'old_partition'), 3::bigint,
          'dropping the partition keeps 3 rows');
SELECT is(to_regclass(:'old_partition'), NULL, '... the partition is gone');
SELECT is(ARRAY(SELECT r.label FROM old_rows r JOIN vibescaling.dispatch_logs l ON l.id = r.id ORDER BY r.label),
          ARRAY(SELECT label FROM old_rows WHERE keep ORDER BY label),
          '... the kept ones: the draft''s accepted init, the unsettled unknown init, the failed post''s upload chunk');
SELECT is((SELECT count(*) FROM old_rows r JOIN vibescaling.dispatch_logs l ON l.id = r.id
            WHERE l.tableoid = 'vibescaling.dispatch_logs_default'::regclass), 3::bigint,
          '... now in the default partition');
SELECT is((SELECT state || ' ' || publish_id FROM vibescaling._earlier_init((SELECT draft_sent FROM old_posts))),
          'sent v_pub_draft_' || :'run', 'the draft still cannot be sent twice: its accepted init is known');
SELECT is(vs_test.sqlstate_of(format('SELECT vibescaling.publish_post(%L, %L, ''SELF_ONLY'')',
                                     (SELECT draft_sent FROM old_posts), :'acct')),
          '55000', '... publish_post refuses it (55000, already sent)');
SELECT is((SELECT state FROM vibescaling._earlier_init((SELECT unsettled FROM old_posts))), 'unknown',
          'the unknown init stays unknown until it is settled');

-- The bound those lookups use holds: a post's created_at never moves forward.
UPDATE vibescaling.posts SET created_at = now() + interval '1 year' WHERE id = (SELECT draft_sent FROM old_posts);
SELECT is((SELECT created_at FROM vibescaling.posts WHERE id = (SELECT draft_sent FROM old_posts)), :'old_week'::timestamptz,
          'a post''s created_at cannot be moved forward (its calls are never older than it)');

------------------------------------------------------------------------------
-- 4. The default partition lets go of kept rows once they are no longer needed.
------------------------------------------------------------------------------
DELETE FROM vibescaling.posts WHERE id = (SELECT failed_upload FROM old_posts);
SELECT is(vibescaling._prune_log_default('vibescaling.dispatch_logs'), 1::bigint,
          'once the failed post is deleted, its old upload chunk is pruned from the default partition');
SELECT is((SELECT count(*) FROM old_rows r JOIN vibescaling.dispatch_logs l ON l.id = r.id), 2::bigint,
          '... and the other two stay');

------------------------------------------------------------------------------
-- 5. Rows that wait in the default partition for their week (maintenance
--    did not run for a while) move into it when it is created.
------------------------------------------------------------------------------
SELECT vibescaling._log_week(now() + interval '35 days') AS later_week \gset
INSERT INTO vibescaling.dispatch_logs (trigger, endpoint, outcome, created_at)
VALUES ('manual', 'early_' || :'run', 'success', :'later_week'::timestamptz + interval '1 hour');
SELECT is((SELECT tableoid::regclass::text FROM vibescaling.dispatch_logs WHERE endpoint = 'early_' || :'run'),
          'vibescaling.dispatch_logs_default', 'a row whose week has no partition waits in the default partition');
CALL vibescaling.maintain_logs();
SELECT is((SELECT tableoid::regclass::text FROM vibescaling.dispatch_logs WHERE endpoint = 'early_' || :'run'),
          'vibescaling.dispatch_logs_' || to_char(:'later_week'::timestamptz AT TIME ZONE 'UTC', 'YYYYMMDD'),
          'maintain_logs creates its week''s partition and moves it there');

------------------------------------------------------------------------------
-- 6. Analytics and webhook dedupe read across partitions.
------------------------------------------------------------------------------
SELECT ok((SELECT first_at FROM vibescaling.dispatch_stats WHERE endpoint = 'video_init') < now() - interval '190 days'
          AND (SELECT attempts FROM vibescaling.dispatch_stats WHERE endpoint = 'early_' || :'run') = 1,
          'dispatch_stats reads every partition: the rows kept in the default one and next month''s');
INSERT INTO vibescaling.webhook_events (event, body_sha256, received_at)
VALUES ('post.publish.complete', encode(sha256(convert_to('{"old": "' || :'run' || '"}', 'UTF8')), 'hex'), now() - interval '20 days');
SELECT is((SELECT count(*) FROM vibescaling.webhook_events
            WHERE body_sha256 = encode(sha256(convert_to('{"old": "' || :'run' || '"}', 'UTF8')), 'hex')
              AND tableoid <> 'vibescaling.webhook_events_default'::regclass), 0::bigint,
          'a webhook event 20 days old waits in the default partition (its week has none yet)');
CALL vibescaling.maintain_logs();
SELECT isnt((SELECT tableoid::regclass::text FROM vibescaling.webhook_events
              WHERE body_sha256 = encode(sha256(convert_to('{"old": "' || :'run' || '"}', 'UTF8')), 'hex')),
            'vibescaling.webhook_events_default', '... and maintain_logs gives its week a partition');

SELECT * FROM finish();
