#!/bin/sh
# The image's entry point after tini: the allocator settings of deploy/allocator.env, then the command.
set -a
. /srv/asl/allocator.env
set +a
exec "$@"
