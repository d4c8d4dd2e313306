#!/usr/bin/env bash
# Compiles the dbt models (Jinja2 + the package macros, as dbt does) and compares the result with the
# pg_regress file sql/44_dbt_models.sql that scripts/test.sh runs against the throwaway cluster.
#   integrations/dbt/compile_check.sh          # check (exit 1 when out of date)
#   integrations/dbt/compile_check.sh --write  # regenerate after editing models or macros
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cdp_install_packages python3-jinja2 python3-yaml
exec /usr/bin/python3 "$CDP_ROOT/integrations/dbt/compile_check.py" "${1:---check}"
