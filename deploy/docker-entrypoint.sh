#!/bin/sh
# The image's entry point.
#
#   (no arguments) or `serve [ARGS...]`: with MIGRATE_ON_START=true, apply pending
#       migrations first (`llm-gateway db upgrade`; the serve does not start if they
#       fail), then exec `llm-gateway serve`, with `--workers $WORKERS` when WORKERS
#       is set (a positive integer), followed by ARGS.
#   anything else: `llm-gateway ARGS...` (e.g. `db upgrade`, `check-config`).
#
# MIGRATE_ON_START suits one container; with several replicas run the migration once
# instead (Compose's migrate service, the Kubernetes Job): see docs/deployment.md.
set -eu

fail() {
    echo "docker-entrypoint: $*" >&2
    exit 64
}

if [ "$#" -eq 0 ]; then
    set -- serve
fi

if [ "$1" != "serve" ]; then
    exec llm-gateway "$@"
fi
shift

case "${MIGRATE_ON_START:-false}" in
    true | TRUE | True | 1 | yes | on)
        echo "docker-entrypoint: MIGRATE_ON_START: llm-gateway db upgrade" >&2
        llm-gateway db upgrade
        ;;
    false | FALSE | False | 0 | no | off | "") ;;
    *) fail "MIGRATE_ON_START='${MIGRATE_ON_START}': expected true or false" ;;
esac

if [ -n "${WORKERS:-}" ]; then
    case "$WORKERS" in
        *[!0-9]* | 0*) fail "WORKERS='${WORKERS}': expected a positive integer" ;;
    esac
    exec llm-gateway serve --workers "$WORKERS" "$@"
fi
exec llm-gateway serve "$@"
