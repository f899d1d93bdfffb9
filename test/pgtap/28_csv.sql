-- The schedule in and out as CSV: import_schedule checks every row and
-- schedules all or none, with a report of the refused rows; export_schedule
-- writes what import_schedule reads back.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(9);

SELECT md5(random()::text) AS run \gset
SELECT vs_test.new_account('csv_' || :'run') AS acct \gset
SELECT to_char((now() + interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"') AS t1 \gset
SELECT to_char((now() + interval '2 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"') AS t2 \gset

-- A file with a refused row: nothing is written; the report names the row.
SELECT format(E'caption,video_url,tiktok_account_id,privacy_level,scheduled_at\n'
              '"csv one %s, with a comma and a ""quote""",https://verified.example/a.mp4,%s,SELF_ONLY,%s\n'
              'csv two %s,https://verified.example/b.mp4,%s,EVERYONE,%s\n',
              :'run', :'acct', :'t1', :'run', :'acct', :'t2') AS bad \gset
SELECT vibescaling.import_schedule(:'bad') AS r \gset
SELECT is((:'r'::jsonb) #>> '{data,imported}', '0', 'a file with a refused row imports nothing');
SELECT is((:'r'::jsonb) #> '{data,rejected}' -> 0 ->> 'line', '3', '... the report names the refused row (line 3)');
SELECT is((:'r'::jsonb) #> '{data,rejected}' -> 0 ->> 'sqlstate', '22023', '... with its SQLSTATE');
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE caption LIKE 'csv % ' || :'run' || '%'), 0::bigint,
          '... and no post of it was written, not even the good row''s');

-- The same file, fixed: both scheduled, quotes and commas kept.
SELECT vibescaling.import_schedule(replace(:'bad', 'EVERYONE', 'MUTUAL_FOLLOW_FRIENDS')) AS r2 \gset
SELECT is((:'r2'::jsonb) #>> '{data,imported}', '2', 'the fixed file schedules both rows');
SELECT is((SELECT caption FROM vibescaling.posts WHERE caption LIKE 'csv one%' || :'run' || '%'),
          format('csv one %s, with a comma and a "quote"', :'run'), '... the quoted caption read exactly');

-- Export, then import the export: the same schedule.
SELECT vibescaling.export_schedule() AS exported \gset
SELECT ok(:'exported' LIKE 'caption,video_url,tiktok_account_id,privacy_level,scheduled_at,mode,%', 'export_schedule: a header row');
UPDATE vibescaling.posts SET status = 'draft' WHERE caption LIKE 'csv % ' || :'run' || '%' AND status = 'scheduled';
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE caption LIKE 'csv %' || :'run' || '%' AND status = 'scheduled'), 0::bigint,
          'the two posts taken off the schedule');
SELECT vibescaling.import_schedule(
         (SELECT string_agg(line, E'\n') FROM regexp_split_to_table(:'exported', E'\n') WITH ORDINALITY x(line, n)
           WHERE n = 1 OR line LIKE '%' || :'run' || '%')) AS r3 \gset
SELECT results_eq(format($$SELECT caption, scheduled_at, privacy_level FROM vibescaling.posts
                           WHERE caption LIKE 'csv %%%s%%' AND status = 'scheduled' ORDER BY scheduled_at$$, :'run'),
                  format($$SELECT caption, scheduled_at, privacy_level FROM vibescaling.posts
                           WHERE caption LIKE 'csv %%%s%%' AND status = 'draft' ORDER BY scheduled_at$$, :'run'),
                  'importing the export schedules the same posts at the same times with the same options');

SELECT * FROM finish();
