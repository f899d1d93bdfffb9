-- vibescaling: the schedule in and out as CSV. import_schedule takes a CSV
-- text (RFC 4180: a header row, fields quoted with " when they hold a
-- comma, a quote or a line break), checks every row as schedule_post
-- would, and schedules all of them or none: a file with a refused row
-- writes nothing and answers which rows and why. export_schedule writes
-- the scheduled posts in the same columns, so an export imports again.

-- The columns, in export order: the post's content, its account, its time
-- and its options.
CREATE FUNCTION vibescaling._csv_columns()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['caption', 'video_url', 'tiktok_account_id', 'privacy_level', 'scheduled_at', 'mode',
                 'disable_comment', 'disable_duet', 'disable_stitch', 'brand_content_toggle', 'brand_organic_toggle']
$$;

-- The rows of an RFC 4180 CSV text, each an array of its fields (quotes
-- removed, "" as one "). At most 1 MB (22023 over it, or for a quote left
-- open).
CREATE FUNCTION vibescaling._csv_rows(csv text)
RETURNS SETOF text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n        integer := length(csv);
    i        integer := 1;
    c        text;
    v_field  text := '';
    v_row    text[] := '{}';
    v_quoted boolean := false;
BEGIN
    IF octet_length(csv) > 1048576 THEN
        RAISE EXCEPTION 'a CSV of at most 1 MB' USING ERRCODE = '22023';
    END IF;
    WHILE i <= n LOOP
        c := substr(csv, i, 1);
        IF v_quoted THEN
            IF c = '"' AND substr(csv, i + 1, 1) = '"' THEN
                v_field := v_field || '"';
                i := i + 1;
            ELSIF c = '"' THEN
                v_quoted := false;
            ELSE
                v_field := v_field || c;
            END IF;
        ELSIF c = '"' THEN
            v_quoted := true;
        ELSIF c = ',' THEN
            v_row := v_row || v_field;
            v_field := '';
        ELSIF c = E'\n' OR c = E'\r' THEN
            IF c = E'\r' AND substr(csv, i + 1, 1) = E'\n' THEN
                i := i + 1;
            END IF;
            v_row := v_row || v_field;
            IF v_row <> ARRAY[''] THEN
                RETURN NEXT v_row;
            END IF;
            v_row := '{}';
            v_field := '';
        ELSE
            v_field := v_field || c;
        END IF;
        i := i + 1;
    END LOOP;
    IF v_quoted THEN
        RAISE EXCEPTION 'the CSV ends inside a quoted field' USING ERRCODE = '22023';
    END IF;
    v_row := v_row || v_field;
    IF v_row <> ARRAY[''] THEN
        RETURN NEXT v_row;
    END IF;
END
$$;

-- One CSV field, quoted when it must be.
CREATE FUNCTION vibescaling._csv_field(value text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN value IS NULL THEN ''
                WHEN value ~ '[",\r\n]' OR value <> btrim(value) THEN '"' || replace(value, '"', '""') || '"'
                ELSE value END
$$;

-- Schedules the posts of a CSV (columns: _csv_columns, in any order, by
-- the header; caption, video_url, tiktok_account_id, privacy_level and
-- scheduled_at required, the rest optional), each as a new draft then
-- schedule_post with its checks (the 5-minute rule, the account, TikTok's
-- caps, the media). All or nothing: when any row is refused, nothing is
-- written. Returns {"data": {"imported", "post_ids": [...]}} (with
-- "warnings": [{"line", "code", "message", "detail"}] when a day comes
-- near one of TikTok's caps) or {"data": {"imported": 0, "rejected":
-- [{"line", "error", "sqlstate"}]}}. At most 1,000 rows.
CREATE FUNCTION vibescaling.import_schedule(csv text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_header   text[];
    v_row      text[];
    v_line     integer := 1;
    v_rec      jsonb;
    v_post     uuid;
    v_posts    jsonb := '[]';
    v_rejected jsonb := '[]';
    v_state    text;
    v_message  text;
    v_unknown  text;
    v_first    boolean := true;
    v_col      integer;
    v_accounts uuid[] := '{}';
    v_answer   jsonb;
    v_warnings jsonb := '[]';
BEGIN
    IF csv IS NULL THEN
        RAISE EXCEPTION 'a CSV text is required' USING ERRCODE = '22004';
    END IF;
    -- The scheduling locks of every account the file names, first and in
    -- _lock_accounts' order (a pass over the rows for that column alone).
    FOR v_row IN SELECT r FROM vibescaling._csv_rows(csv) r LOOP
        IF v_first THEN
            v_col := array_position(ARRAY(SELECT lower(btrim(h)) FROM unnest(v_row) h), 'tiktok_account_id');
            v_first := false;
        ELSIF v_row[v_col] ~* '^\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\s*$' THEN
            v_accounts := v_accounts || btrim(v_row[v_col])::uuid;
        END IF;
    END LOOP;
    PERFORM vibescaling._lock_accounts(v_accounts);
    -- All or nothing: a refused row undoes the others (the block's
    -- rollback); the report outlives it.
    BEGIN
    FOR v_row IN SELECT r FROM vibescaling._csv_rows(csv) r LOOP
        IF v_header IS NULL THEN
            v_header := (SELECT array_agg(lower(btrim(h)) ORDER BY o) FROM unnest(v_row) WITH ORDINALITY u(h, o));
            SELECT h INTO v_unknown FROM unnest(v_header) h WHERE NOT (h = ANY (vibescaling._csv_columns())) LIMIT 1;
            IF v_unknown IS NOT NULL THEN
                RAISE EXCEPTION 'unknown CSV column "%"', v_unknown USING ERRCODE = '22023',
                      HINT = 'The columns: ' || array_to_string(vibescaling._csv_columns(), ', ') || '.';
            END IF;
            CONTINUE;
        END IF;
        v_line := v_line + 1;
        IF v_line > 1001 THEN
            RAISE EXCEPTION 'at most 1000 rows a file' USING ERRCODE = '22023';
        END IF;
        BEGIN
            IF cardinality(v_row) <> cardinality(v_header) THEN
                RAISE EXCEPTION 'the row has % fields, the header %', cardinality(v_row), cardinality(v_header)
                    USING ERRCODE = '22023';
            END IF;
            SELECT jsonb_object_agg(v_header[o], nullif(f, '')) INTO v_rec FROM unnest(v_row) WITH ORDINALITY u(f, o);
            INSERT INTO vibescaling.posts (caption, video_url) VALUES (v_rec->>'caption', v_rec->>'video_url')
            RETURNING id INTO v_post;
            v_answer := vibescaling._schedule_with(v_post, (v_rec->>'scheduled_at')::timestamptz,
                                                   (v_rec->>'tiktok_account_id')::uuid, v_rec);
            v_posts := v_posts || to_jsonb(v_post);
            v_warnings := v_warnings || coalesce((SELECT jsonb_agg(jsonb_build_object('line', v_line) || w)
                                                    FROM jsonb_array_elements(v_answer->'warnings') w), '[]');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            v_rejected := v_rejected || jsonb_build_object('line', v_line, 'error', v_message, 'sqlstate', v_state);
        END;
    END LOOP;
    IF v_header IS NULL THEN
        RAISE EXCEPTION 'the CSV has no header row' USING ERRCODE = '22023';
    END IF;
    IF jsonb_array_length(v_rejected) > 0 THEN
        RAISE EXCEPTION 'vibescaling: import refused' USING ERRCODE = 'P0001';
    END IF;
    EXCEPTION WHEN raise_exception THEN
        IF jsonb_array_length(v_rejected) = 0 THEN
            RAISE;
        END IF;
        RETURN jsonb_build_object('data', jsonb_build_object('imported', 0, 'rejected', v_rejected));
    END;
    RETURN jsonb_build_object('data', jsonb_build_object('imported', jsonb_array_length(v_posts), 'post_ids', v_posts))
           || CASE WHEN v_warnings = '[]' THEN '{}' ELSE jsonb_build_object('warnings', v_warnings) END;
END
$$;
COMMENT ON FUNCTION vibescaling.import_schedule(text) IS
    'Schedules the posts of a CSV text (header row, _csv_columns), all or none; {"data":{"imported","post_ids"|"rejected"}}.';

-- The scheduled posts as a CSV text (a header row, then one row per post,
-- the earliest first), in the columns import_schedule takes: what the
-- caller may read (a tenant its own). Video posts from a URL only: a large
-- object or bytea source has no CSV form.
CREATE FUNCTION vibescaling.export_schedule()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._export_schedule(NULL)
$$;

-- export_schedule's text, of one owner's posts (NULL: every post the
-- caller may read). The HTTP API's export runs as the extension's owner
-- and names the tenant.
CREATE FUNCTION vibescaling._export_schedule(p_owner text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_to_string(vibescaling._csv_columns(), ',') || E'\n'
           || coalesce(string_agg(concat_ws(',',
                  vibescaling._csv_field(p.caption), vibescaling._csv_field(p.video_url),
                  vibescaling._csv_field(p.tiktok_account_id::text), vibescaling._csv_field(p.privacy_level),
                  vibescaling._csv_field(to_char(p.scheduled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                  vibescaling._csv_field(p.mode), p.disable_comment::text, p.disable_duet::text, p.disable_stitch::text,
                  p.brand_content_toggle::text, p.brand_organic_toggle::text) || E'\n',
                  '' ORDER BY p.scheduled_at, p.id), '')
      FROM vibescaling.posts p
     WHERE p.status = 'scheduled' AND p.media_type = 'video' AND p.video_url IS NOT NULL
       AND (p_owner IS NULL OR p.owner = p_owner)
$$;
COMMENT ON FUNCTION vibescaling.export_schedule() IS
    'The scheduled video posts (from a URL) as a CSV text in import_schedule''s columns.';

REVOKE ALL ON FUNCTION vibescaling._csv_columns() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._csv_rows(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._csv_field(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.import_schedule(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.export_schedule() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._export_schedule(text) FROM PUBLIC;
