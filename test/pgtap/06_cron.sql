-- The real thing: pg_cron runs the dispatcher job, which publishes a due
-- post. Takes up to a minute (pg_cron's finest schedule is one minute).
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(5);

SELECT 'cron_' || substr(md5(random()::text), 1, 8) AS oid \gset
SELECT vs_test.new_account(:'oid') AS acct \gset
SELECT vs_test.new_video('published by pg_cron') AS v \gset
SELECT vibescaling.schedule_post(:'v', now() + interval '10 minutes', :'acct', 'SELF_ONLY') IS NOT NULL AS scheduled;
SELECT vs_test.make_due(:'v');

-- Waits until the post leaves 'scheduled' or the timeout passes; answers its status.
CREATE FUNCTION pg_temp.wait_for_dispatch(post uuid, timeout_s integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    FOR i IN 1..timeout_s LOOP
        SELECT status INTO v_status FROM vibescaling.posts WHERE id = post;
        EXIT WHEN v_status <> 'scheduled';
        PERFORM pg_sleep(1);
    END LOOP;
    RETURN v_status;
END
$$;

SELECT ok(vibescaling.enable_scheduler('* * * * *') > 0, 'enable_scheduler registers the pg_cron job');
SELECT is(pg_temp.wait_for_dispatch(:'v', 150), 'posted', 'pg_cron''s run of the dispatcher published the due post');
SELECT results_eq(format($$SELECT endpoint, trigger, outcome FROM vibescaling.dispatch_logs
                          WHERE post_id = %L AND trigger = 'scheduler' ORDER BY id$$, :'v'),
                  $$VALUES ('creator_info', 'scheduler', 'success'), ('video_init', 'scheduler', 'success')$$,
                  '... logged with trigger scheduler');
SELECT ok(EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                   WHERE j.jobname = 'vibescaling-dispatch' AND d.status = 'succeeded'
                     AND d.command = 'CALL vibescaling.dispatch_due_posts()'),
          'pg_cron recorded a succeeded run of CALL vibescaling.dispatch_due_posts()');
SELECT ok(vibescaling.disable_scheduler(), 'disable_scheduler drops the job');

SELECT * FROM finish();
