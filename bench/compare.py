"""Timings of the same indicator outside databrain, for `databrain bench`.

Given the DuckDB file, the work-order CSV and the SQL databrain runs for 12345 on-time closure
by city and month over one year, this times (1) that SQL in the Python DuckDB package on the
same file and (2) the same computation in pandas, and prints one JSON object. Packages: PyPI
`duckdb` (the same engine version as the crate) and `pandas`; a missing one is reported, not
fatal.
"""

import argparse
import json
import statistics
import time


def timed(fn, runs):
    samples = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--sql", required=True, help="file with the SQL")
    parser.add_argument("--params", required=True, help="JSON list of positional parameters")
    parser.add_argument("--year", required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    out = {}

    try:
        import duckdb

        out["duckdb_version"] = duckdb.__version__
        con = duckdb.connect(args.db, read_only=True)
        sql = open(args.sql, encoding="utf-8").read()
        params = json.loads(args.params)
        ms, rows = timed(lambda: con.execute(sql, params).fetchall(), args.runs)
        out["duckdb_ms"] = ms
        out["duckdb_rows"] = len(rows)
        con.close()
    except Exception as e:  # reported in the table, not fatal
        out["duckdb_error"] = f"{type(e).__name__}: {e}"

    try:
        import pandas as pd

        out["pandas_version"] = pd.__version__
        start = time.perf_counter()
        df = pd.read_csv(
            args.csv,
            usecols=["community_code", "due_at", "closed_at"],
            dtype={"community_code": str},
            parse_dates=["due_at", "closed_at"],
        )
        out["pandas_load_ms"] = (time.perf_counter() - start) * 1000.0

        def compute():
            year = df[df["due_at"].dt.year == int(args.year)]
            on_time = year["closed_at"].notna() & (year["closed_at"] <= year["due_at"])
            keys = [year["community_code"].str[:4], year["due_at"].dt.to_period("M")]
            g = on_time.groupby(keys).agg(["sum", "count"])
            return g["sum"] / g["count"]

        ms, result = timed(compute, args.runs)
        out["pandas_ms"] = ms
        out["pandas_rows"] = len(result)
    except Exception as e:
        out["pandas_error"] = f"{type(e).__name__}: {e}"

    print(json.dumps(out))


if __name__ == "__main__":
    main()
