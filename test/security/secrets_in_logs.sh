#!/usr/bin/env bash
# Defect 6 (and 9a): secrets in the server log when everything is logged.
# The security cluster runs with auto_explain logging every nested plan
# verbosely (log_nested_statements, log_verbose, log_analyze) and
# log_statement = all (test/security/run.sh). After the pgTAP files, this
# runs the flows that handle secrets (OAuth code exchange, forced token
# refresh in the worker, a publish, a revoke, a signed webhook, a failed
# download from a pre-signed URL), then looks for every token, the client
# secret, the encryption key and the URL's signature in the log and in
# what the extension stores.
set -uo pipefail
cd "$(dirname "$0")/../.."

. test/lib/check.sh
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

log=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $NF }')
run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
signature="SIGNATURE${run}SECRET"

# The flows, each as an application would call them (no secret in the
# statements themselves: those are the caller's to keep out of the log).
acct=$(q -c "SELECT vibescaling.connect_account('code-secrets_$run', 'https://app.example/cb')")
q -c "SELECT count(*) FROM vibescaling.refresh_expiring_tokens('100 years')" >/dev/null
post=$(q -c "SELECT vs_test.new_video()")
q -c "SELECT vibescaling.publish_post('$post', '$acct', 'SELF_ONLY')" >/dev/null
# A signed webhook, signed here as TikTok would (the application never holds the secret in SQL).
body='{"client_key":"sim_client_key","event":"post.publish.complete","create_time":1,"user_openid":"x","content":"{\"publish_id\":\"none\"}"}'
secret=$(q -c "SHOW vibescaling.client_secret")
t=$(date +%s)
sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" | awk '{ print $NF }')
applied=$(q -v body="$body" -v sig="t=$t,s=$sig" <<'SQL'
SELECT vibescaling.handle_webhook(:'body', :'sig') #>> '{data,event}';
SQL
)
# A video to upload from a pre-signed URL that fails (404): its signature must not be repeated anywhere.
sim="http://127.0.0.1:${VS_SIM_PORT:-18443}"
upost=$(q -c "INSERT INTO vibescaling.posts (caption, video_url) VALUES ('presigned', '$sim/nowhere/v.mp4?X-Amz-Signature=$signature&X-Amz-Expires=60') RETURNING id")
last_error=$(q <<SQL
CREATE FUNCTION pg_temp.error_of(stmt text) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE m text; d text; h text;
BEGIN
    EXECUTE stmt;
    RETURN '';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN concat_ws(' ', m, d, h);
END
\$f\$;
SELECT pg_temp.error_of(\$\$SELECT vibescaling.publish_post('$upost', '$acct', 'SELF_ONLY')\$\$);
SQL
)
logged_errors=$(q -c "SELECT coalesce(string_agg(error_message, ' '), '') FROM vibescaling.dispatch_logs WHERE post_id = '$upost'")
acct2=$(q -c "SELECT vibescaling.connect_account('code-secrets2_$run', 'https://app.example/cb')")
revoked_token=$(q -c "SELECT vibescaling._unseal(access_token_enc) FROM vibescaling.tiktok_accounts WHERE id = '$acct2'")
q -c "SELECT vibescaling.disconnect_account('$acct2')" >/dev/null
sleep 1

secrets=$(mktemp)
q -c "SELECT vibescaling._unseal(access_token_enc) FROM vibescaling.tiktok_accounts WHERE access_token_enc IS NOT NULL
      UNION SELECT vibescaling._unseal(refresh_token_enc) FROM vibescaling.tiktok_accounts WHERE refresh_token_enc IS NOT NULL
      UNION SELECT current_setting('vibescaling.client_secret')
      UNION SELECT current_setting('vibescaling.token_encryption_key')" >"$secrets"
echo "$revoked_token" >>"$secrets"

check "the signed webhook was accepted (the client secret was used)" post.publish.complete "$applied"
check "auto_explain logged nested plans" yes "$([ "$(grep -c 'Query Text:' "$log")" -gt 100 ] && echo yes || echo no)"
check "log_statement logged statements" yes "$([ "$(grep -c 'LOG:  statement:' "$log")" -gt 10 ] && echo yes || echo no)"
check "there are secrets to look for" yes "$([ "$(wc -l <"$secrets")" -ge 10 ] && echo yes || echo no)"
leaks=$(grep -cFf "$secrets" "$log")
check "no token, client secret or key in the server log ($(wc -l <"$log") lines)" 0 "$leaks"
if [ "$leaks" != 0 ]; then
  # Where, with the secret itself masked and the lines around it.
  python3 - "$secrets" "$log" <<'PY'
import sys
secrets = [s for s in open(sys.argv[1]).read().split('\n') if s]
lines = open(sys.argv[2], errors='replace').read().split('\n')
shown = 0
for i, line in enumerate(lines):
    if any(s in line for s in secrets) and shown < 6:
        shown += 1
        for l in lines[max(0, i - 3):i + 3]:
            for s in secrets:
                l = l.replace(s, '<<secret>>')
            print('#   ' + l[:300])
        print('#   ---')
PY
fi
# Tokens the simulator issued and that were rotated away since (never stored now): by their shape.
check "no simulator-issued token of any age in the server log" 0 "$(grep -cE '\b(act|rft)\.[A-Za-z0-9_-]{40}\b' "$log")"
# The URL is the application's data (its INSERT is logged as it sent it);
# what the extension says about it must not repeat the signature.
check "no error, warning, detail or hint in the server log repeats the URL's signature" 0 \
      "$(grep -E '(ERROR|WARNING|DETAIL|HINT|NOTICE):' "$log" | grep -c "$signature")"
check "the failed pre-signed download kept its error" yes "$([ -n "$last_error$logged_errors" ] && echo yes || echo no)"
check "... without the URL's signature in the error raised or dispatch_logs" 0 \
      "$(printf '%s %s' "$last_error" "$logged_errors" | grep -c "$signature")"
rm -f "$secrets"
finish_checks security_secrets
