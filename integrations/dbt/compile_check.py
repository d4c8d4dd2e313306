#!/usr/bin/env python3
"""Compiles the pg_cdp dbt package's models the way dbt does (Jinja2 + the package's macros) into the
pg_regress file sql/44_dbt_models.sql, so the compiled SQL runs against the throwaway cluster in
scripts/test.sh without dbt itself (dbt-postgres is not installable on this machine: no PyPI, no
Debian package).

  compile_check.py --check   # exit 1 when sql/44_dbt_models.sql differs from a fresh compile
  compile_check.py --write   # regenerate it

Emulated: config(materialized, pre_hook), source(), ref(), var(), adapter.quote(), the table/view
materializations (create ... as), and the generic tests of schema.yml (unique, not_null,
accepted_values) with dbt's failure queries (a test passes when it returns 0 rows).
"""
import argparse
import difflib
import pathlib
import sys

import jinja2
import yaml

PACKAGE = pathlib.Path(__file__).resolve().parent
ROOT = PACKAGE.parent.parent
REGRESS_FILE = ROOT / "sql" / "44_dbt_models.sql"
# The regression run reads its own copy of the sample shop and writes into its own schemas.
TARGET_SCHEMA = "regress_dbt"
SOURCE_SCHEMAS = {"shop": "regress_dbt_shop"}
# As `dbt run --vars '{pg_cdp_full_rebuild: true}'`: the regression database also holds other tests' merges.
REGRESS_VARS = {"pg_cdp_full_rebuild": True}


def quote(name):
    return '"' + str(name).replace('"', '""') + '"'


class Relation(str):
    pass


def relation(schema, name):
    return Relation(f"{quote(schema)}.{quote(name)}")


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def main():
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    args = parser.parse_args()

    project = load_yaml(PACKAGE / "dbt_project.yml")
    variables = dict(project.get("vars") or {})
    variables.update(REGRESS_VARS)
    custom_schema = project["models"]["pg_cdp"].get("+schema")
    model_schema = f"{TARGET_SCHEMA}_{custom_schema}" if custom_schema else TARGET_SCHEMA
    sources = {}
    schemas = {}
    for path in sorted((PACKAGE / "models").glob("*.yml")):
        doc = load_yaml(path)
        for src in doc.get("sources") or []:
            schema = SOURCE_SCHEMAS.get(src.get("schema", src["name"]), src.get("schema", src["name"]))
            for table in src.get("tables") or []:
                sources[(src["name"], table["name"])] = relation(schema, table["name"])
        for model in doc.get("models") or []:
            schemas[model["name"]] = model

    macros = "\n".join(p.read_text() for p in sorted((PACKAGE / "macros").glob("*.sql")))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

    def var(name, default=None):
        if name in variables:
            return variables[name]
        if default is None:
            raise KeyError(f"var {name} is not defined")
        return default

    def source(src, table):
        return sources[(src, table)]

    def ref(name):
        return relation(model_schema, name)

    class Adapter:
        @staticmethod
        def quote(name):
            return quote(name)

    def render(text, config=None):
        context = {"var": var, "source": source, "ref": ref, "adapter": Adapter(),
                   "config": (lambda **kw: config.update(kw) or "") if config is not None else (lambda **kw: "")}
        return env.from_string(macros + "\n" + text).render(context).strip()

    out = [(PACKAGE / "regress_setup.sql").read_text().rstrip(), ""]
    out.append(f"CREATE SCHEMA {quote(model_schema)};")
    for path in sorted((PACKAGE / "models").glob("*.sql")):
        name = path.stem
        config = {}
        sql = render(path.read_text(), config)
        hooks = config.get("pre_hook") or []
        if isinstance(hooks, str):
            hooks = [hooks]
        out.append("")
        out.append(f"-- model {name} (models/{path.name}), compiled")
        for hook in hooks:
            out.append(render(hook) + ";")
        kind = config.get("materialized", "view")
        target = relation(model_schema, name)
        if kind == "table":
            out.append(f"CREATE TABLE {target} AS (\n{sql}\n);")
        elif kind == "view":
            out.append(f"CREATE VIEW {target} AS (\n{sql}\n);")
        else:
            sys.exit(f"{path}: materialization {kind} is not emulated")
        out.append(f"SELECT count(*) > 0 AS {quote(name + '_has_rows')} FROM {target};")
        for column in (schemas.get(name) or {}).get("columns") or []:
            col = quote(column["name"])
            for test in column.get("tests") or []:
                test_name, params = (test, {}) if isinstance(test, str) else next(iter(test.items()))
                if test_name == "unique":
                    query = (f"select {col} as unique_field, count(*) as n_records from {target} "
                             f"where {col} is not null group by {col} having count(*) > 1")
                elif test_name == "not_null":
                    query = f"select {col} from {target} where {col} is null"
                elif test_name == "accepted_values":
                    quoted = params.get("quote", True)
                    values = ", ".join(("'" + str(v).replace("'", "''") + "'") if quoted else str(v)
                                       for v in params["values"])
                    query = (f"with all_values as (select {col} as value_field, count(*) as n_records "
                             f"from {target} group by {col}) "
                             f"select * from all_values where value_field not in ({values})")
                else:
                    sys.exit(f"{name}.{column['name']}: test {test_name} is not emulated")
                label = f"{test_name}_{name}_{column['name']}"
                out.append(f"SELECT '{label}' AS test, count(*) AS failures FROM ({query}) dbt_internal_test;")
    out.append("")
    out.append((PACKAGE / "regress_teardown.sql").read_text().rstrip())
    compiled = "\n".join(out) + "\n"

    if args.write:
        REGRESS_FILE.write_text(compiled)
        print(f"wrote {REGRESS_FILE.relative_to(ROOT)}")
        return 0
    current = REGRESS_FILE.read_text() if REGRESS_FILE.exists() else ""
    if current != compiled:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), compiled.splitlines(True),
                                                   str(REGRESS_FILE), "compiled"))
        print("sql/44_dbt_models.sql is out of date: run integrations/dbt/compile_check.sh --write", file=sys.stderr)
        return 1
    print("sql/44_dbt_models.sql matches the compiled models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
