-- poll_publish_statuses: the status poller follows publishes to their final state.
-- The simulator runs with --processing-seconds 2 (scripts/sim.sh): a publish
-- completes 2 s after init and gets its public post id 2 s later.
-- The polls here go through vibescaling._poll_publish_statuses limited to this
-- test's accounts (the public function is the same with every account), so
-- that other sessions' publish records are neither polled nor counted.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(45);

SELECT 'poll_' || substr(md5(random()::text), 1, 8) AS oid \gset
SELECT vs_test.new_account(:'oid') AS acct \gset
SELECT 'pollb_' || substr(md5(random()::text), 1, 8) AS oid2 \gset
SELECT vs_test.new_account(:'oid2') AS acct2 \gset

-- One poll of one account's records.
CREATE FUNCTION pg_temp.poll(account uuid, max_records integer DEFAULT 100,
                             give_up_after interval DEFAULT '2 hours') RETURNS jsonb
LANGUAGE sql AS $$ SELECT vibescaling._poll_publish_statuses(max_records, give_up_after, ARRAY[account]) $$;

-- The poll's answer with every count.
CREATE FUNCTION pg_temp.counts(polled integer, final integer, still_processing integer, timed_out integer,
                               errors integer, skipped_backoff integer) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('polled', polled, 'final', final, 'still_processing', still_processing,
                              'timed_out', timed_out, 'errors', errors, 'skipped_backoff', skipped_backoff)
$$;

-- Status fetches of an open_id that reached the simulator.
CREATE FUNCTION pg_temp.fetches(open_id text) RETURNS bigint
LANGUAGE sql AS $$ SELECT count(*) FROM vs_test.sim_requests(open_id, 'status_fetch') r WHERE r->'fault' IS NULL OR r->'fault' = 'null' $$;

-- Moves the last checks of an account's records back (the backoff waits 10 s
-- after a check in a record's first minute; the tests do not sleep that long).
CREATE FUNCTION pg_temp.checked_ago(account uuid, ago interval) RETURNS void
LANGUAGE sql AS $$
    UPDATE vibescaling.publish_records SET checked_at = checked_at - ago
     WHERE tiktok_account_id = account AND checked_at IS NOT NULL
$$;

-- The backoff grows with a record's age.
SELECT results_eq($$SELECT vibescaling._status_poll_delay(a::interval)
                     FROM unnest(ARRAY['5 seconds', '59 seconds', '1 minute', '9 minutes', '10 minutes',
                                       '59 minutes', '1 hour', '1 day']) a$$,
                  $$VALUES ('10 seconds'::interval), ('10 seconds'), ('30 seconds'), ('30 seconds'),
                           ('2 minutes'), ('2 minutes'), ('10 minutes'), ('10 minutes')$$,
                  'the delay between checks: 10 s in the first minute, 30 s, 2 min after 10 min, 10 min after an hour');

-- Bad arguments; the public function with max_records 0 polls nothing.
SELECT throws_ok('SELECT vibescaling.poll_publish_statuses(-1)', '22023', 'max_records must be 0 or more',
                 'a negative max_records → 22023');
SELECT throws_ok($$SELECT vibescaling.poll_publish_statuses(10, '0 seconds')$$, '22023',
                 'give_up_after must be a positive interval', 'a zero give_up_after → 22023');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(vibescaling.poll_publish_statuses(0)) k),
          ARRAY['errors', 'final', 'polled', 'skipped_backoff', 'still_processing', 'timed_out'],
          'poll_publish_statuses() answers the six counts');
SELECT is(vibescaling.poll_publish_statuses(0) - 'skipped_backoff',
          pg_temp.counts(0, 0, 0, 0, 0, 0) - 'skipped_backoff', '... and with max_records 0 it polls nothing');

-- Five publishes: direct (final once it has its post id), inbox, a FAILED
-- one, a slower one (published after 3 s, post id after 6 s) and one that
-- stays processing for 10 minutes.
SELECT vs_test.new_video('direct') AS direct \gset
SELECT vs_test.new_video('inbox') AS inbox \gset
SELECT vs_test.new_video('bad file', 'https://verified.example/bad.mp4?sim_fail=file_format_check_failed') AS bad \gset
SELECT vs_test.new_video('slower', 'https://verified.example/slow.mp4?sim_processing_seconds=3') AS slow \gset
SELECT vs_test.new_video('stuck', 'https://verified.example/stuck.mp4?sim_processing_seconds=600') AS stuck \gset
SELECT vibescaling.publish_post(:'direct', :'acct', 'SELF_ONLY') IS NOT NULL AS published;
SELECT vibescaling.publish_post(:'inbox', :'acct', 'SELF_ONLY', mode => 'inbox') IS NOT NULL AS published;
SELECT vibescaling.publish_post(:'bad', :'acct', 'SELF_ONLY') IS NOT NULL AS published;
SELECT vibescaling.publish_post(:'slow', :'acct', 'SELF_ONLY') IS NOT NULL AS published;
SELECT vibescaling.publish_post(:'stuck', :'acct', 'SELF_ONLY') IS NOT NULL AS published;
SELECT publish_id AS stuck_pid FROM vibescaling.publish_records WHERE post_id = :'stuck' \gset
SELECT publish_id AS bad_pid FROM vibescaling.publish_records WHERE post_id = :'bad' \gset

-- Right away: all still processing.
SELECT is(pg_temp.poll(:'acct'), pg_temp.counts(5, 0, 5, 0, 0, 0), 'right after the publishes: 5 polled, all still processing');
SELECT is((SELECT array_agg(DISTINCT status) FROM vibescaling.publish_records WHERE tiktok_account_id = :'acct'),
          ARRAY['processing'], '... every record processing');
SELECT ok((SELECT bool_and(checked_at IS NOT NULL) FROM vibescaling.publish_records WHERE tiktok_account_id = :'acct'),
          '... and checked');
SELECT is(pg_temp.fetches(:'oid'), 5::bigint, '... one status fetch each reached TikTok');
SELECT results_eq(format($$SELECT trigger, outcome FROM vibescaling.dispatch_logs
                          WHERE post_id = %L AND endpoint = 'status_fetch' ORDER BY id$$, :'direct'),
                  $$VALUES ('status', 'success')$$, '... logged in dispatch_logs like publish_status');

-- Again at once: nothing is due (backoff).
SELECT is(pg_temp.poll(:'acct'), pg_temp.counts(0, 0, 0, 0, 0, 5), 'polled again at once: all 5 skipped by the backoff');
SELECT is(pg_temp.fetches(:'oid'), 5::bigint, '... and TikTok was not asked');

-- 4.5 s later: direct has its post id, inbox and bad are done, slow is
-- published without a post id yet, stuck still processing. The status fetch
-- of stuck (checked longest ago, so polled first) answers 500.
SELECT pg_sleep(4.5);
SELECT pg_temp.checked_ago(:'acct', '10 seconds');
UPDATE vibescaling.publish_records SET checked_at = checked_at - interval '10 seconds' WHERE post_id = :'stuck';
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "status_fetch", "http_status": 500, "error_code": "internal_error"}') IS NOT NULL AS armed;
-- One fetch at a time for this poll, so that the fault surely hits the first
-- (the poller's batch otherwise has them all in flight at once).
SET vibescaling.max_concurrent_requests = 1;
SELECT is(pg_temp.poll(:'acct'), pg_temp.counts(5, 3, 1, 0, 1, 0),
          'after processing: 5 polled, 3 final, 1 still processing, 1 error');
RESET vibescaling.max_concurrent_requests;
SELECT is((SELECT status || ' ' || cardinality(public_post_ids) FROM vibescaling.publish_records WHERE post_id = :'direct'),
          'published 1', 'direct: published with its public post id');
SELECT is((SELECT status FROM vibescaling.publish_records WHERE post_id = :'inbox'), 'sent_to_inbox',
          'inbox: sent_to_inbox');
SELECT is((SELECT status || ': ' || fail_reason FROM vibescaling.publish_records WHERE post_id = :'bad'),
          'failed: file_format_check_failed', 'bad: failed with TikTok''s fail_reason');
SELECT is((SELECT status || ': ' || last_error FROM vibescaling.posts WHERE id = :'bad'),
          format('failed: TikTok: publish %s failed: file_format_check_failed', :'bad_pid'),
          '... and its post is failed with the reason');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'direct'), 'posted', 'the direct post stays posted');
SELECT is((SELECT status || ' ' || cardinality(public_post_ids) FROM vibescaling.publish_records WHERE post_id = :'slow'),
          'published 0', 'slow: published, no public post id yet (not final)');
SELECT is((SELECT status FROM vibescaling.publish_records WHERE post_id = :'stuck'), 'processing',
          'stuck: its status fetch failed, still processing');
SELECT results_eq(format($$SELECT outcome, http_status, error_code FROM vibescaling.dispatch_logs
                          WHERE post_id = %L AND endpoint = 'status_fetch' ORDER BY id$$, :'stuck'),
                  $$VALUES ('success', 200, 'ok'), ('failure', 500, 'internal_error')$$,
                  '... the 500 is in dispatch_logs');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'stuck'), 'posted', '... and its post stays posted');
-- (Counted: the fetches TikTok answered itself, not the injected fault.)
SELECT is(pg_temp.fetches(:'oid'), 9::bigint, 'four more status fetches answered for the account');

-- At once again: slow and the failed check of stuck back off; the final
-- records are not due ever again.
SELECT is(pg_temp.poll(:'acct'), pg_temp.counts(0, 0, 0, 0, 0, 2), 'at once again: the 2 unfinished records back off');
SELECT is(pg_temp.fetches(:'oid'), 9::bigint, '... no status fetch');

-- Older than give_up_after and still processing: unconfirmed, without asking TikTok.
UPDATE vibescaling.publish_records SET created_at = now() - interval '3 hours' WHERE post_id = :'stuck';
SELECT is(pg_temp.poll(:'acct'), pg_temp.counts(0, 0, 0, 1, 0, 1), 'a record processing for 3 hours: timed out');
SELECT is((SELECT status || ': ' || fail_reason FROM vibescaling.publish_records WHERE post_id = :'stuck'),
          'unconfirmed: no final status from TikTok after 02:00:00',
          '... the record is unconfirmed, saying why');
SELECT is((SELECT status || ': ' || last_error FROM vibescaling.posts WHERE id = :'stuck'),
          format('posted: TikTok: publish %s unconfirmed: no final status from TikTok after 02:00:00', :'stuck_pid'),
          '... and its post stays posted (TikTok accepted it), saying so');
SELECT is(pg_temp.fetches(:'oid'), 9::bigint, '... TikTok was not asked');
SELECT is(pg_temp.poll(:'acct', give_up_after => '1 hour') - 'skipped_backoff',
          pg_temp.counts(0, 0, 0, 0, 0, 0) - 'skipped_backoff', 'a timed-out record is final');

-- A published record without a post id is final once give_up_after has passed.
SELECT pg_temp.checked_ago(:'acct', '1 minute');
SELECT is(pg_temp.poll(:'acct', give_up_after => '1 second'), pg_temp.counts(0, 0, 0, 0, 0, 0),
          'published without a post id for longer than give_up_after: not polled');
SELECT is(pg_temp.fetches(:'oid'), 9::bigint, '... no status fetch');

-- Within give_up_after it is polled until the post id comes.
SELECT pg_sleep(2.5);
SELECT is(pg_temp.poll(:'acct'), pg_temp.counts(1, 1, 0, 0, 0, 0), 'slow, once due: polled and final');
SELECT is((SELECT status || ' ' || cardinality(public_post_ids) FROM vibescaling.publish_records WHERE post_id = :'slow'),
          'published 1', '... published with its public post id');
SELECT is(pg_temp.fetches(:'oid'), 10::bigint, '... one status fetch');

-- Final records are never polled again, however long ago they were checked.
SELECT pg_temp.checked_ago(:'acct', '1 day');
SELECT is(pg_temp.poll(:'acct'), pg_temp.counts(0, 0, 0, 0, 0, 0), 'all final: nothing to poll');
SELECT is(pg_temp.fetches(:'oid'), 10::bigint, '... the status fetches of the account do not grow');

-- max_records, and at most 25 status fetches per account per run. Records
-- with publish_ids TikTok does not know (400 invalid_publish_id): errors.
CREATE TEMP TABLE fakes AS
SELECT i, vs_test.new_video('fake ' || i) AS post_id FROM generate_series(1, 28) i;
INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode)
SELECT post_id, :'acct2', format('v_pub_url~v2.%s_%s', :'oid2', i), 'video_init', 'direct' FROM fakes ORDER BY i;
SELECT is(pg_temp.poll(:'acct2', max_records => 2), pg_temp.counts(2, 0, 0, 0, 2, 0),
          'max_records 2: two polled, TikTok''s refusals counted as errors');
SELECT is(pg_temp.fetches(:'oid2'), 2::bigint, '... two status fetches');
SELECT is(pg_temp.poll(:'acct2'), pg_temp.counts(25, 0, 0, 0, 25, 3),
          'then 26 due: 25 polled (the account''s limit per run), 1 deferred, 2 backing off after their errors');
SELECT is(pg_temp.fetches(:'oid2'), 27::bigint, '... 25 status fetches in that run');
SELECT is((SELECT count(*) FROM vibescaling.publish_records WHERE tiktok_account_id = :'acct2' AND checked_at IS NULL),
          1::bigint, '... one never checked');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs
            WHERE tiktok_account_id = :'acct2' AND endpoint = 'status_fetch' AND error_code = 'invalid_publish_id'),
          27::bigint, '... each refusal in dispatch_logs');
SELECT is((SELECT count(*) FROM vibescaling.publish_records WHERE tiktok_account_id = :'acct2' AND status = 'processing'),
          28::bigint, '... the records stay processing');

-- pg_cron: the job, registered and dropped in one transaction (pg_cron never
-- sees it, so it does not run the poller over every session's records here).
CREATE FUNCTION pg_temp.cron_round_trip() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_out text;
    v_job bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RETURN 'no pg_cron';
    END IF;
    v_job := vibescaling._schedule_status_poller();
    EXECUTE 'SELECT string_agg(format(''%s|%s|%s'', jobname, schedule, command), '','') FROM cron.job WHERE jobid = $1'
       INTO v_out USING v_job;
    RETURN v_out || ' ' || vibescaling._unschedule_status_poller() || ' ' || vibescaling._unschedule_status_poller();
END
$$;
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')
            THEN is(pg_temp.cron_round_trip(),
                    'vibescaling-poll-status|* * * * *|SELECT vibescaling.poll_publish_statuses() true false',
                    '_schedule_status_poller registers the pg_cron job every minute; _unschedule_status_poller drops it')
            ELSE skip('pg_cron is not installed in this database') END;

SELECT * FROM finish();
