#!/bin/sh
# As nginxinc/nginx-unprivileged's entrypoint does: each /etc/nginx/templates/*.template rendered into
# /etc/nginx/conf.d/ by envsubst, replacing only the variables that NGINX_ENVSUBST_FILTER matches.
set -eu
variables=$(env | cut -d= -f1 | grep -E "${NGINX_ENVSUBST_FILTER:-.}" | sed 's/^/$/' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
    [ -e "$template" ] || continue
    envsubst "$variables" <"$template" >"/etc/nginx/conf.d/$(basename "$template" .template)"
done
exec nginx -g 'daemon off;'
