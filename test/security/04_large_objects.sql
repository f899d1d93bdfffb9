-- Defect 5: a role that may write posts but not read large object N set
-- video_lo = N, and the superuser dispatcher uploaded N to TikTok. Now the
-- writing role must be able to read the source when it sets it, and it
-- still must when the post is sent. The same for media rows.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(10);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vs_test.new_account('lo_' || :'run') AS acct \gset
SELECT vs_test.new_lo(1048576) AS secret_lo \gset
SELECT vs_test.new_lo(1048576) AS shared_lo \gset

CREATE ROLE vs_sec_writer;
GRANT USAGE ON SCHEMA vibescaling TO vs_sec_writer;
GRANT SELECT, INSERT, UPDATE ON vibescaling.posts TO vs_sec_writer;
GRANT SELECT ON LARGE OBJECT :shared_lo TO vs_sec_writer;
GRANT USAGE ON SCHEMA vs_test TO vs_sec_writer;

SET ROLE vs_sec_writer;
SELECT is(vs_test.sqlstate_of(format($$INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('steal', %s)$$, :secret_lo)),
          '42501', 'a role may not set video_lo to a large object it cannot read (INSERT)');
INSERT INTO vibescaling.posts (caption, video_url) VALUES ('mine', 'https://verified.example/a.mp4') RETURNING id AS mine \gset
SELECT is(vs_test.sqlstate_of(format($$UPDATE vibescaling.posts SET video_url = NULL, video_lo = %s WHERE id = %L$$,
                                     :secret_lo, :'mine')),
          '42501', '... nor by UPDATE');
SELECT is(vs_test.sqlstate_of(format($$UPDATE vibescaling.posts SET video_url = NULL, video_lo = %s, source_role = 10 WHERE id = %L$$,
                                     :secret_lo, :'mine')),
          '42501', '... nor by claiming another role in source_role');
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('shared', :shared_lo) RETURNING id AS shared_post \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('shared too', :shared_lo) RETURNING id AS shared_draft \gset
SELECT is((SELECT source_role::regrole::text FROM vibescaling.posts WHERE id = :'shared_post'), 'vs_sec_writer',
          'a readable large object is accepted, and the post remembers who set it');
UPDATE vibescaling.posts SET caption = 'edited', source_role = 10 WHERE id = :'shared_post';
SELECT is((SELECT source_role::regrole::text FROM vibescaling.posts WHERE id = :'shared_post'), 'vs_sec_writer',
          '... which the writer cannot change');
RESET ROLE;

-- media rows: SELECT on vibescaling.media is needed.
SELECT vs_test.new_lo(4096) AS media_lo \gset
INSERT INTO vibescaling.media (data) VALUES (lo_get(:media_lo)) RETURNING id AS media \gset
SET ROLE vs_sec_writer;
SELECT is(vs_test.sqlstate_of(format($$INSERT INTO vibescaling.posts (caption, media_id) VALUES ('m', %L)$$, :'media')),
          '42501', 'a role without SELECT on vibescaling.media may not point a post at a media row');
RESET ROLE;

-- Rights revoked after the post was written: the publisher refuses before sending.
SELECT vibescaling.schedule_post(:'shared_post', now() + interval '10 minutes', :'acct', 'SELF_ONLY') IS NOT NULL AS scheduled \gset
REVOKE SELECT ON LARGE OBJECT :shared_lo FROM vs_sec_writer;
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_uploads(:'later');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'shared_post'), 'failed',
          'when the writer lost the right to read it, the dispatcher does not upload the object');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = :'shared_post'), 'may not read it',
               '... and says why');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('lo_' || :'run', 'video_init')), 0::bigint,
          '... no init was sent, no byte uploaded');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'shared_draft', :'acct')),
          '42501', 'publish_post refuses another post of that object too (42501)');

DROP OWNED BY vs_sec_writer;
DROP ROLE vs_sec_writer;
SELECT * FROM finish();
