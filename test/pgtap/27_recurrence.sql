-- Recurring posts: a rule (every N days, or weekly days and times) in a
-- zone, until an end or a count; each occurrence a post of its own,
-- scheduled a week ahead; changing or stopping the rule touches only the
-- occurrences not sent yet.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(14);

SELECT md5(random()::text) AS run \gset
SELECT vs_test.new_account('rec_' || :'run') AS acct \gset
SELECT vs_test.new_video('evergreen ' || :'run') AS post \gset

-- Every 2 days at 10:00 Paris time, 10 times at most.
SELECT vibescaling.repeat_post(:'post', :'acct', '{"every_days": 2, "time": "10:00"}', 'Europe/Paris',
                               '{"privacy_level": "SELF_ONLY"}', max_count => 10) AS r \gset
SELECT (:'r'::jsonb #>> '{data,recurrence_id}')::bigint AS rec \gset
SELECT ok(jsonb_array_length(:'r'::jsonb #> '{data,occurrences}') BETWEEN 3 AND 4,
          'repeat_post schedules the coming week''s occurrences at once (3 or 4 of every 2 days)');
SELECT ok((SELECT bool_and(to_char(scheduled_at AT TIME ZONE 'Europe/Paris', 'HH24:MI') = '10:00') FROM vibescaling.posts
            WHERE recurrence_id = :'rec'), '... each at 10:00 Paris time');
SELECT ok((SELECT bool_and(d = 2) FROM (SELECT (scheduled_at AT TIME ZONE 'Europe/Paris')::date
                                               - lag((scheduled_at AT TIME ZONE 'Europe/Paris')::date) OVER (ORDER BY scheduled_at) AS d
                                          FROM vibescaling.posts WHERE recurrence_id = :'rec') x WHERE d IS NOT NULL),
          '... two days apart');
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE recurrence_id = :'rec' AND status = 'scheduled' AND caption = 'evergreen ' || :'run'),
          (SELECT occurrences::bigint FROM vibescaling.recurrences WHERE id = :'rec'),
          '... each a scheduled post of its own, with the post''s content');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'post'), 'draft', 'the repeating post itself stays a draft');
SELECT is(vibescaling.expand_recurrences() -> 'scheduled', '0'::jsonb, 'expanding again schedules nothing twice');

-- One occurrence is dispatched: its own publish record.
SELECT id AS first_occurrence, scheduled_at AS first_at FROM vibescaling.posts WHERE recurrence_id = :'rec'
 ORDER BY scheduled_at LIMIT 1 \gset
SELECT vs_test.make_due(:'first_occurrence') IS NOT NULL AS due \gset
CALL vibescaling.dispatch_due_posts();
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'first_occurrence'), 'posted', 'an occurrence is published on its own');
SELECT is((SELECT count(*) FROM vibescaling.publish_records WHERE post_id = :'first_occurrence'), 1::bigint, '... with its own publish record');

-- Changing the rule: weekly, Tuesdays and Fridays at 08:15. Only the future changes.
SELECT vibescaling.change_recurrence(:'rec', rule => '{"weekly": [{"weekday": "tue", "time": "08:15"}, {"weekday": 5, "time": "08:15"}]}') AS c \gset
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'first_occurrence'), 'posted', 'changing the rule leaves the sent occurrence');
SELECT ok((SELECT bool_and(extract(isodow FROM scheduled_at AT TIME ZONE 'Europe/Paris') IN (2, 5)
                           AND to_char(scheduled_at AT TIME ZONE 'Europe/Paris', 'HH24:MI') = '08:15')
             FROM vibescaling.posts WHERE recurrence_id = :'rec' AND status = 'scheduled'),
          '... and the coming occurrences follow the new rule');
SELECT ok((SELECT count(*) FROM vibescaling.posts WHERE recurrence_id = :'rec' AND status = 'scheduled') BETWEEN 1 AND 2,
          '... one or two in the coming week (a Tuesday and a Friday, but one just now starting)');

-- Stopping it.
SELECT vibescaling.change_recurrence(:'rec', stop => true) IS NOT NULL AS stopped \gset
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE recurrence_id = :'rec' AND status = 'scheduled'), 0::bigint,
          'stopping removes the occurrences not sent yet');
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE recurrence_id = :'rec' AND status = 'posted'), 1::bigint,
          '... and keeps the one sent');

-- A bad rule.
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.repeat_post(%L, %L, '{"every_days": 0, "time": "10:00"}', 'UTC', '{"privacy_level": "SELF_ONLY"}')$$,
                                     vs_test.new_video('bad rule'), :'acct')), '22023', 'every 0 days: 22023');

SELECT * FROM finish();
