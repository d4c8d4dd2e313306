#!/usr/bin/env bash
# The main job: install what is missing, build, start a throwaway cluster inside the checkout,
# create the extension, load a generated sample shop and show what pg_cdp makes of it.
# Re-running it rebuilds the demo database from scratch. Stop the cluster with: scripts/demo.sh stop
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "${1:-}" = stop ]; then cdp_cluster_stop; echo "cluster stopped"; exit 0; fi

cdp_install_packages
cdp_build
cdp_cluster_start

log "creating database cdp_demo and loading the sample shop"
psql -qX -v ON_ERROR_STOP=1 -d postgres -c 'DROP DATABASE IF EXISTS cdp_demo' -c 'CREATE DATABASE cdp_demo'
export PGDATABASE=cdp_demo
for script in "$CDP_ROOT"/demo/*.sql; do
  psql -X -v ON_ERROR_STOP=1 -P pager=off -f "$script"
done

cat <<MSG

The cluster keeps running so you can explore:
  psql -h '$PGHOST' -p $PGPORT -U postgres cdp_demo
Stop it with: scripts/demo.sh stop
MSG
