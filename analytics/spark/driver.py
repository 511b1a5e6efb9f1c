"""The Spark driver behind `analytics::spark`: one process per `Spark::connect`.

It starts a SparkSession against the master it is given (a standalone cluster's
`spark://HOST:PORT`, or `local[N]`), registers every table of a history written by
`databrain export --parquet` as a view, and then answers batches of SQL, one JSON line in,
one JSON line out. Its protocol channel is the stdout it was started with; everything the
JVM or Python prints goes to stderr, so no log line can be read as an answer.

Request:  {"id": 7, "sql": "...", "params": ["..."], "out": null | "/dir"}
Answer:   {"id": 7, "columns": [...], "rows": [[...]]} | {"id": 7, "written": true}
          | {"id": 7, "error": "..."}

Requests run side by side (a pool of threads, Spark scheduling their jobs fairly) and are
answered as they finish, each with its id. Parameters are bound by Spark
(`spark.sql(sql, args=[...])`), never pasted in.
"""

import json
import os
import sys
import threading

# The answer channel is a copy of stdout; fd 1 itself then points at stderr, for the JVM too.
_answers = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import date, datetime  # noqa: E402


_answering = threading.Lock()


def answer(obj):
    line = json.dumps(obj, default=plain, allow_nan=False) + "\n"
    with _answering:
        _answers.write(line)
        _answers.flush()


def plain(value):
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot send a {type(value).__name__}")


def main():
    config = json.loads(sys.argv[1])
    history = config["history"]
    try:
        with open(os.path.join(history, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        answer({"error": f"cannot read the history's manifest.json: {e}, in {history}"})
        return 1

    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(config["master"])
        .appName(config.get("app", "databrain"))
        # Timestamps are wall-clock times as DuckDB keeps them: no zone, no shift.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
        # Partition values (month=2024-07, city=3201) stay text, as they were written.
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(config.get("shuffle_partitions", 8)))
        .config("spark.scheduler.mode", "FAIR")
    )
    for key, value in config.get("conf", {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")

    # Executors other than the driver's own block manager; a cluster's register a moment
    # after the session starts, so wait (bounded) for as many as the caller asks, before the
    # tables are read (a cached table is spread over the executors there are).
    import time

    def executors():
        return spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1

    deadline = time.monotonic() + float(config.get("executor_wait_s", 60))
    while executors() < int(config.get("min_executors", 0)) and time.monotonic() < deadline:
        time.sleep(0.2)
    executors = executors()

    for name, table in manifest["tables"].items():
        path = os.path.join(history, table["path"])
        frame = spark.read.option("basePath", path).parquet(path)
        if config.get("cache_tables"):
            # Read once into the executors' memory (small histories, many queries), as one
            # partition per core: every query then runs a task per core, not one per file
            # group, and on a small history the tasks' fixed cost is most of a query's.
            frame = frame.coalesce(max(1, spark.sparkContext.defaultParallelism))
        frame.createOrReplaceTempView(name)
        if config.get("cache_tables"):
            spark.sql(f"CACHE TABLE {name}")

    answer({"ready": True, "spark": spark.version, "executors": executors})

    def run(query):
        try:
            frame = spark.sql(query["sql"], args=list(query.get("params", [])))
            if query.get("out"):
                frame.write.mode("overwrite").parquet(query["out"])
                result = {"written": True}
            else:
                result = {"columns": frame.columns, "rows": [list(r) for r in frame.collect()]}
        except Exception as e:  # named and sent back; the driver lives on
            # Spark's first lines say what is wrong; its plans and traces stay in the log.
            result = {"error": f"{type(e).__name__}: {str(e)[:600]}"}
        result["id"] = query.get("id")
        try:
            answer(result)
        except (TypeError, ValueError) as e:
            answer({"id": query.get("id"), "error": f"cannot send the rows: {e}"})

    with ThreadPoolExecutor(max_workers=int(config.get("parallel", 4))) as pool:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                query = json.loads(line)
                query["sql"]
            except (ValueError, KeyError, TypeError) as e:
                answer({"id": None, "error": f"bad request: {e}"})
                continue
            pool.submit(run, query)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
