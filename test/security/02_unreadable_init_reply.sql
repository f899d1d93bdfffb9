-- Defect 3: TikTok acted on an init, then its reply could not be read (or
-- was a 5xx). Such a reply does not prove a refusal: its outcome is
-- unknown, and neither a second publish_post nor the dispatcher may send
-- the init again (TikTok has no idempotency key: that would be a second
-- post). The simulator creates the publish first, then replaces the reply
-- (after_processing).
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(31);

SELECT substr(md5(random()::text), 1, 8) AS run \gset

-- Publishes a post whose init reply the simulator replaces with the given
-- fault, then tries again; returns what happened:
-- {"first": SQLSTATE of the first publish_post, "unknown": its dispatch row's
--  outcome_unknown, "second": SQLSTATE of the second, "inits": inits TikTok saw}.
CREATE FUNCTION pg_temp.garbled(kind text, fault jsonb, post_mode text DEFAULT 'direct', photo boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_open_id  text := 'dup_' || kind || '_' || post_mode || '_' || substr(md5(random()::text), 1, 6);
    v_account  uuid := vs_test.new_account(v_open_id);
    v_post     uuid := CASE WHEN photo THEN vs_test.new_photo(2) ELSE vs_test.new_video() END;
    v_endpoint text := CASE WHEN photo THEN 'content_init' WHEN post_mode = 'inbox' THEN 'inbox_video_init'
                            ELSE 'video_init' END;
    v_first    text;
    v_second   text;
BEGIN
    PERFORM vs_test.sim_post('/_sim/faults', fault || jsonb_build_object('endpoint', v_endpoint,
                                                                         'open_id', v_open_id, 'after_processing', true));
    v_first := vs_test.sqlstate_of(format($q$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY', mode => %L)$q$,
                                          v_post, v_account, post_mode));
    v_second := vs_test.sqlstate_of(format($q$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY', mode => %L)$q$,
                                           v_post, v_account, post_mode));
    RETURN jsonb_build_object(
        'first', v_first,
        'unknown', (SELECT l.outcome_unknown FROM vibescaling.dispatch_logs l
                     WHERE l.post_id = v_post AND l.endpoint = v_endpoint ORDER BY l.id LIMIT 1),
        'second', v_second,
        'inits', (SELECT count(*) FROM vs_test.sim_requests(v_open_id, v_endpoint)));
END
$$;

-- Every way a reply can be unreadable, on the Direct Post video init.
SELECT pg_temp.garbled('html', '{"action": "html", "http_status": 200}') AS r \gset
SELECT isnt(:'r'::jsonb->>'first', 'ok', 'an HTML 200 reply to an init fails the publish');
SELECT is(:'r'::jsonb->>'unknown', 'true', '... with outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... and a second publish_post sends no second init');

SELECT pg_temp.garbled('malformed', '{"action": "malformed"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'invalid JSON: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('empty', '{"action": "empty"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'an empty body: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('array', '{"action": "array"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'a JSON array: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('wrongtypes', '{"action": "wrongtypes"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'fields of the wrong types: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('wrongok', '{"action": "wrongtypes", "error_code": "ok"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', '"ok" with a numeric publish_id: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('binary', '{"action": "binary"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'invalid UTF-8: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('e500', '{"action": "error", "http_status": 500, "error_code": "internal_error"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'a 5xx sent after TikTok acted: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('e502', '{"action": "html", "http_status": 502}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'a proxy''s HTML 502: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

SELECT pg_temp.garbled('unknowncode', '{"action": "error", "http_status": 400, "error_code": "something_new"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'an error code TikTok never documented: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

-- The same rule for the inbox and photo inits.
SELECT pg_temp.garbled('html', '{"action": "html", "http_status": 200}', 'inbox') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'inbox init, HTML reply: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');
SELECT pg_temp.garbled('malformed', '{"action": "malformed"}', 'direct', true) AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'true', 'photo init, invalid JSON: outcome unknown');
SELECT is(:'r'::jsonb->>'inits', '1', '... no second init');

-- A refusal TikTok documents is a known outcome: nothing was posted, a retry may go.
SELECT pg_temp.garbled('refused', '{"action": "error", "http_status": 403, "error_code": "spam_risk_too_many_posts"}') AS r \gset
SELECT is(:'r'::jsonb->>'unknown', 'false', 'a documented refusal (spam_risk_too_many_posts) is a known outcome');

-- The dispatcher: the post waits for a settlement (publishing), and is never sent again.
SELECT vs_test.new_account('dupd_' || :'run') AS acct \gset
SELECT (vibescaling.schedule_post(vs_test.new_video(), now() + interval '10 minutes', :'acct', 'SELF_ONLY') #>> '{data,id}') AS p \gset
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'action', 'malformed',
                        'after_processing', true, 'open_id', 'dupd_' || :'run')) IS NOT NULL AS armed \gset
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p'), 'publishing',
          'the dispatcher leaves a post whose init reply was unreadable publishing, until settled');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = :'p'), 'unknown',
               '... saying its outcome is unknown');
SELECT is(vs_test.sqlstate_of(format($$UPDATE vibescaling.posts SET status = 'scheduled', scheduled_at = now() + interval '10 minutes'
                                       WHERE id = %L$$, :'p')), '55000', '... which cannot be rescheduled as it is');
UPDATE vibescaling.posts SET status = 'failed' WHERE id = :'p';
UPDATE vibescaling.posts SET status = 'scheduled', scheduled_at = now() + interval '10 minutes' WHERE id = :'p';
SELECT now() + interval '2 hours' AS much_later \gset
CALL vibescaling.dispatch_due_posts(:'much_later');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('dupd_' || :'run', 'video_init')), 1::bigint,
          '... and even rescheduled, its init is not sent again');
SELECT is((SELECT count(*) FROM jsonb_array_elements(vs_test.sim_get('/_sim/publishes')->'publishes') p
            WHERE p->>'open_id' = 'dupd_' || :'run'), 1::bigint, '... TikTok holds exactly one publish');

SELECT * FROM finish();
