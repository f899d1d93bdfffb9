-- vibescaling: bounded logs. dispatch_logs and webhook_events are
-- partitioned by week (UTC, Monday to Monday); maintain_logs, run hourly by
-- the vibescaling-logs pg_cron job, creates the coming weeks' partitions
-- and drops the partitions older than vibescaling.log_retention, after
-- moving into the default partition the few rows the extension still needs:
--   - the inits and upload chunks of posts that are not
--     posted (_earlier_init and _publish_progress_from_log read them to
--     keep a post from being sent twice);
--   - unsettled inits of unknown outcome, whatever the post's state;
-- and never anything newer than 7 days (the GUC's floor): the rate limiter
-- looks back a minute, the upload quota a day, webhook dedupe 72 hours.
-- Every step takes its locks with a short lock_timeout and commits on its
-- own, so dispatch waits for at most that long, and a step that cannot get
-- its lock is tried again at the next run.

-- The first instant (UTC) of the week that holds t.
CREATE FUNCTION vibescaling._log_week(t timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT date_trunc('week', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- The logs maintain_logs looks after: each partitioned table, its default
-- partition and the column it is partitioned by.
CREATE FUNCTION vibescaling._log_tables(OUT parent regclass, OUT default_partition regclass, OUT time_column text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('vibescaling.dispatch_logs'::regclass, 'vibescaling.dispatch_logs_default'::regclass, 'created_at'),
           ('vibescaling.webhook_events'::regclass, 'vibescaling.webhook_events_default'::regclass, 'received_at')
$$;

-- The partitions of a log (the default one aside) with their bounds; a
-- NULL lower bound is MINVALUE (the rows an upgrade from 0.1.1 found).
CREATE FUNCTION vibescaling._log_partition_bounds(parent regclass)
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::regclass,
           (substring(b.expr FROM 'FROM \(''([^'']+)''\)'))::timestamptz,
           (substring(b.expr FROM 'TO \(''([^'']+)''\)'))::timestamptz
      FROM pg_catalog.pg_inherits i
      JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS expr) b
     WHERE i.inhparent = parent AND b.expr <> 'DEFAULT'
     ORDER BY 3
$$;

-- Raises unless the current role may create and drop the log's partitions
-- (it owns the log or is a member of its owner).
CREATE FUNCTION vibescaling._require_log_owner(parent regclass)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = parent), 'USAGE') THEN
        RAISE EXCEPTION 'permission denied: only the owner of % may maintain its partitions', parent
            USING ERRCODE = '42501', HINT = 'Run vibescaling.maintain_logs() as the extension''s owner.';
    END IF;
END
$$;

-- Creates the log's partition for the week that starts at week_start,
-- unless a partition already covers part of it: a table of the parent's
-- shape, owned by the parent's owner, filled with the rows of that week
-- the default partition holds, then attached (which locks the parent only
-- against other schema changes; the default partition is locked while it
-- is checked). False when it already existed, NULL when a lock was not
-- granted within vibescaling.log_lock_timeout (nothing was done).
CREATE FUNCTION vibescaling._create_log_partition(parent regclass, week_start timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_log        record;
    v_week_end   timestamptz := week_start + interval '7 days';
    v_name       text;
    v_partition  text;
BEGIN
    PERFORM vibescaling._require_log_owner(parent);
    SELECT * INTO STRICT v_log FROM vibescaling._log_tables() t WHERE t.parent = _create_log_partition.parent;
    IF week_start IS DISTINCT FROM vibescaling._log_week(week_start) THEN
        RAISE EXCEPTION 'week_start % is not the start of a UTC week', week_start USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM vibescaling._log_partition_bounds(parent) p
                WHERE coalesce(p.lower_bound < v_week_end, true) AND p.upper_bound > week_start) THEN
        RETURN false;
    END IF;
    v_name := (SELECT c.relname FROM pg_class c WHERE c.oid = parent)
              || '_' || to_char(week_start AT TIME ZONE 'UTC', 'YYYYMMDD');
    v_partition := format('vibescaling.%I', v_name);
    PERFORM set_config('lock_timeout', current_setting('vibescaling.log_lock_timeout'), true);
    BEGIN
        EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_partition, parent);
        EXECUTE format('ALTER TABLE %s OWNER TO %I', v_partition,
                       (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = parent));
        PERFORM vibescaling._set_up_log_partition(parent, v_partition::regclass);
        -- The week's rows that wait in the default partition (none, unless
        -- maintenance did not run for a while): attaching would refuse them.
        EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
                       'INSERT INTO %s SELECT * FROM moved',
                       v_log.default_partition, v_log.time_column, v_log.time_column, v_partition)
          USING week_start, v_week_end;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)',
                       parent, v_partition, week_start, v_week_end);
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    RETURN true;
END
$$;

-- The rows of a dispatch_logs partition that the extension still needs
-- past the retention period (see the top of this file).
CREATE FUNCTION vibescaling._dispatch_logs_to_keep(partition regclass)
RETURNS TABLE (id bigint, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT l.id, l.created_at
          FROM %s l
          JOIN vibescaling.posts p ON p.id = l.post_id
         WHERE l.endpoint IN ('video_init', 'inbox_video_init', 'content_init', 'upload_chunk')
           AND (p.status <> 'posted'
                OR (l.outcome_unknown
                    AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                    AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s
                                     WHERE s.post_id = l.post_id AND s.settled_through >= l.id)))
        $q$, partition);
END
$$;

-- Drops a partition of a log whose every row is older than the retention
-- period. The rows still needed are found first, without blocking anyone;
-- then, in one short step under lock_timeout, the partition is detached,
-- those rows go back in (to the default partition: no other covers their
-- time any more) and it is dropped, so that no reader ever misses them.
-- Returns the rows kept, or NULL when a lock was not granted within
-- vibescaling.log_lock_timeout (nothing was done).
CREATE FUNCTION vibescaling._drop_log_partition(parent regclass, partition regclass)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bounds  record;
    v_keep    bigint[];
    v_kept    bigint;
BEGIN
    PERFORM vibescaling._require_log_owner(parent);
    SELECT * INTO v_bounds FROM vibescaling._log_partition_bounds(parent) p WHERE p.partition = _drop_log_partition.partition;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a dated partition of %', partition, parent USING ERRCODE = '22023';
    END IF;
    IF v_bounds.upper_bound > now() - vibescaling._log_retention() THEN
        RAISE EXCEPTION 'partition % holds rows newer than vibescaling.log_retention (%)',
                        partition, current_setting('vibescaling.log_retention')
            USING ERRCODE = '55000';
    END IF;
    IF parent = 'vibescaling.dispatch_logs'::regclass THEN
        SELECT array_agg(k.id) INTO v_keep FROM vibescaling._dispatch_logs_to_keep(partition) k;
    END IF;
    PERFORM set_config('lock_timeout', current_setting('vibescaling.log_lock_timeout'), true);
    BEGIN
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, partition);
        EXECUTE format('INSERT INTO %s SELECT * FROM %s WHERE id = ANY ($1)', parent, partition) USING v_keep;
        GET DIAGNOSTICS v_kept = ROW_COUNT;
        EXECUTE format('DROP TABLE %s', partition);
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    RETURN v_kept;
END
$$;

-- Deletes from a log's default partition the rows older than the retention
-- period that are no longer needed (the post was posted or deleted, the
-- unknown outcome settled). Returns how many.
CREATE FUNCTION vibescaling._prune_log_default(parent regclass)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_log      record;
    v_deleted  bigint;
BEGIN
    PERFORM vibescaling._require_log_owner(parent);
    SELECT * INTO STRICT v_log FROM vibescaling._log_tables() t WHERE t.parent = _prune_log_default.parent;
    IF parent = 'vibescaling.dispatch_logs'::regclass THEN
        DELETE FROM vibescaling.dispatch_logs_default d
         WHERE d.created_at < now() - vibescaling._log_retention()
           AND d.id NOT IN (SELECT k.id FROM vibescaling._dispatch_logs_to_keep('vibescaling.dispatch_logs_default') k);
    ELSE
        EXECUTE format('DELETE FROM %s WHERE %I < $1', v_log.default_partition, v_log.time_column)
          USING now() - vibescaling._log_retention();
    END IF;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;

-- vibescaling.log_retention as an interval.
CREATE FUNCTION vibescaling._log_retention()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT current_setting('vibescaling.log_retention')::interval
$$;

-- The weeks maintain_logs makes sure have a partition: this one, the next
-- vibescaling.log_weeks_ahead, and every week not past the retention
-- period that has rows waiting in the default partition.
CREATE FUNCTION vibescaling._log_weeks_needed(parent regclass)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_log record;
BEGIN
    SELECT * INTO STRICT v_log FROM vibescaling._log_tables() t WHERE t.parent = _log_weeks_needed.parent;
    RETURN QUERY
        SELECT vibescaling._log_week(now()) + make_interval(weeks => w)
          FROM generate_series(0, 2) w
        UNION
        SELECT * FROM vibescaling._log_default_weeks(v_log.default_partition, v_log.time_column);
END
$$;

-- The weeks, not past the retention period, of the rows in a default partition.
CREATE FUNCTION vibescaling._log_default_weeks(default_partition regclass, time_column text)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT DISTINCT vibescaling._log_week(%I) FROM %s WHERE %I >= $1',
                                time_column, default_partition, time_column)
        USING vibescaling._log_week(now() - vibescaling._log_retention());
END
$$;

-- The steps of one maintain_logs run: for each log, create the partitions
-- of _log_weeks_needed (cheap when they exist), drop the partitions past
-- the retention period, prune the default partition.
CREATE FUNCTION vibescaling._maintain_logs_plan()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(s.step ORDER BY s.log_order, s.kind, s.at), '[]')
      FROM (SELECT t.parent::text AS log_order, 1 AS kind, w AS at,
                   jsonb_build_object('op', 'create', 'log', t.parent::text, 'week', w) AS step
              FROM vibescaling._log_tables() t, vibescaling._log_weeks_needed(t.parent) w
            UNION ALL
            SELECT t.parent::text, 2, p.upper_bound,
                   jsonb_build_object('op', 'drop', 'log', t.parent::text, 'partition', p.partition::text)
              FROM vibescaling._log_tables() t, vibescaling._log_partition_bounds(t.parent) p
             WHERE p.upper_bound <= now() - vibescaling._log_retention()
            UNION ALL
            SELECT t.parent::text, 3, NULL, jsonb_build_object('op', 'prune', 'log', t.parent::text)
              FROM vibescaling._log_tables() t) s
$$;

-- Runs the next step of a maintain_logs run (state: NULL at the start) in
-- the caller's transaction and returns the state for the next call, or
-- NULL when the run is over (after a NOTICE saying what it did). Steps of
-- concurrent runs take turns on an advisory lock. A step whose lock was
-- not granted (a long transaction on the log, such as a dispatcher's round,
-- holds it) goes to the end of the run, after a pause that holds no lock
-- (1 s, then doubling up to 15 s), at most max_attempts times in all; then
-- the next run tries again.
CREATE FUNCTION vibescaling._maintain_logs_step(state jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    max_attempts constant integer := 12;
    v_step    jsonb;
    v_i       integer;
    v_log     regclass;
    v_part    regclass;
    v_done    boolean;
    v_kept    bigint;
    v_attempt integer;
BEGIN
    IF state IS NULL THEN
        PERFORM vibescaling._require_log_owner(t.parent) FROM vibescaling._log_tables() t;
        state := jsonb_build_object('steps', vibescaling._maintain_logs_plan(), 'next', 0, 'created', 0,
                                    'dropped', 0, 'kept', 0, 'retried', 0, 'skipped', 0, 'pruned', 0);
    END IF;
    v_i := (state->>'next')::integer;
    IF v_i >= jsonb_array_length(state->'steps') THEN
        RAISE NOTICE 'vibescaling.maintain_logs: % partitions created, % dropped (% rows still needed kept), % old rows pruned from the default partitions; % steps retried after a lock wait, % left to the next run',
                     state->'created', state->'dropped', state->'kept', state->'pruned', state->'retried', state->'skipped';
        RETURN NULL;
    END IF;
    state := jsonb_set(state, '{next}', to_jsonb(v_i + 1));
    v_step := state->'steps'->v_i;
    IF v_step->>'op' = 'pause' THEN
        PERFORM pg_sleep((v_step->>'seconds')::double precision);
        RETURN state;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.maintain_logs'));
    v_log := (v_step->>'log')::regclass;
    v_done := true;
    CASE v_step->>'op'
        WHEN 'create' THEN
            v_done := vibescaling._create_log_partition(v_log, (v_step->>'week')::timestamptz);
            IF v_done THEN
                state := jsonb_set(state, '{created}', to_jsonb((state->>'created')::integer + 1));
            END IF;
        WHEN 'drop' THEN
            -- A run that went before this one may have dropped it already.
            v_part := to_regclass(v_step->>'partition');
            IF v_part IS NOT NULL
               AND EXISTS (SELECT 1 FROM vibescaling._log_partition_bounds(v_log) p WHERE p.partition = v_part) THEN
                v_kept := vibescaling._drop_log_partition(v_log, v_part);
                v_done := CASE WHEN v_kept IS NOT NULL THEN true END;   -- NULL: its lock was not granted
                IF v_done THEN
                    state := jsonb_set(state, '{dropped}', to_jsonb((state->>'dropped')::integer + 1));
                    state := jsonb_set(state, '{kept}', to_jsonb((state->>'kept')::bigint + v_kept));
                END IF;
            END IF;
        WHEN 'prune' THEN
            state := jsonb_set(state, '{pruned}',
                               to_jsonb((state->>'pruned')::bigint + vibescaling._prune_log_default(v_log)));
    END CASE;
    IF v_done IS NULL THEN
        v_attempt := coalesce((v_step->>'attempt')::integer, 1);
        IF v_attempt >= max_attempts THEN
            state := jsonb_set(state, '{skipped}', to_jsonb((state->>'skipped')::integer + 1));
        ELSE
            state := jsonb_set(state, '{retried}', to_jsonb((state->>'retried')::integer + 1));
            state := jsonb_set(state, '{steps}', (state->'steps')
                         || jsonb_build_object('op', 'pause', 'seconds', least(15, 2 ^ (v_attempt - 1)))
                         || jsonb_build_array(jsonb_set(v_step, '{attempt}', to_jsonb(v_attempt + 1))));
        END IF;
    END IF;
    RETURN state;
END
$$;

-- Creates the coming weeks' partitions of dispatch_logs and webhook_events
-- and drops those older than vibescaling.log_retention, keeping what the
-- extension still needs (see the top of this file). Each step commits on
-- its own and waits at most vibescaling.log_lock_timeout for its locks, so
-- it is called on its own (CALL, outside a transaction block). Run hourly
-- by the vibescaling-logs pg_cron job; safe to run at any time, also twice
-- at once. (A procedure that COMMITs cannot pin search_path with SET: as
-- dispatch_due_posts does, it pins it for each of its transactions and
-- calls only schema-qualified, pinned functions.)
CREATE PROCEDURE vibescaling.maintain_logs()
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_state jsonb;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM vibescaling._require_primary();
    LOOP
        v_state := vibescaling._maintain_logs_step(v_state);
        EXIT WHEN v_state IS NULL;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;
REVOKE ALL ON PROCEDURE vibescaling.maintain_logs() FROM PUBLIC;
COMMENT ON PROCEDURE vibescaling.maintain_logs() IS
    'Creates the coming weeks'' partitions of dispatch_logs and webhook_events and drops those older than vibescaling.log_retention, keeping the rows the extension still needs.';

-- The partitions of dispatch_logs and webhook_events, for DBAs: bounds,
-- approximate rows (as of the last ANALYZE) and size.
CREATE VIEW vibescaling.log_partitions AS
    SELECT i.inhparent::regclass AS log, c.oid::regclass AS partition,
           (substring(b.expr FROM 'FROM \(''([^'']+)''\)'))::timestamptz AS lower_bound,
           (substring(b.expr FROM 'TO \(''([^'']+)''\)'))::timestamptz AS upper_bound,
           c.reltuples::bigint AS approximate_rows,
           pg_size_pretty(pg_total_relation_size(c.oid)) AS total_size
      FROM pg_catalog.pg_inherits i
      JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS expr) b
     WHERE i.inhparent IN ('vibescaling.dispatch_logs'::regclass, 'vibescaling.webhook_events'::regclass)
     ORDER BY i.inhparent::regclass::text, 4 NULLS FIRST;
COMMENT ON VIEW vibescaling.log_partitions IS
    'Partitions of dispatch_logs and webhook_events: bounds (NULL: the default partition), approximate rows, size.';

REVOKE ALL ON FUNCTION vibescaling._create_log_partition(regclass, timestamptz),
                       vibescaling._drop_log_partition(regclass, regclass),
                       vibescaling._prune_log_default(regclass),
                       vibescaling._dispatch_logs_to_keep(regclass),
                       vibescaling._log_default_weeks(regclass, text),
                       vibescaling._log_weeks_needed(regclass),
                       vibescaling._log_partition_bounds(regclass),
                       vibescaling._log_tables(),
                       vibescaling._log_week(timestamptz),
                       vibescaling._log_retention(),
                       vibescaling._require_log_owner(regclass),
                       vibescaling._maintain_logs_plan(),
                       vibescaling._maintain_logs_step(jsonb) FROM PUBLIC;
REVOKE ALL ON vibescaling.log_partitions FROM PUBLIC;
