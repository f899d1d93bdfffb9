#!/usr/bin/env bash
# Starts nginx with the shipped server block (api/nginx.conf) on a loopback
# port: TLS swapped for plain HTTP, the upstream pointed at BACKEND_PORT
# (PostgREST, or a test's stand-in), the webhook role's token filled in and
# the Analytics page served from this checkout. Its files, pid and logs are
# in DIR; stop it with: nginx -s stop -c DIR/nginx.conf -p DIR
#   scripts/nginx-local.sh DIR PORT BACKEND_PORT WEBHOOK_JWT
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 port=$2 backend=$3 webhook_jwt=$4

sed -e "s/listen 443 ssl http2;/listen 127.0.0.1:$port;/" -e '/ssl_certificate/d' \
    -e "s/server 127.0.0.1:3000;/server 127.0.0.1:$backend;/" \
    -e "s/CHANGE_ME_webhook_role_jwt/$webhook_jwt/" \
    -e "s|alias /usr/share/vibescaling/analytics/;|alias $PWD/api/analytics/;|" \
    api/nginx.conf >"$dir/site.conf"
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log $dir/nginx-access.log;
    client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
    include $dir/site.conf;
}
CONF
nginx -t -q -c "$dir/nginx.conf" -p "$dir"
nginx -c "$dir/nginx.conf" -p "$dir"
