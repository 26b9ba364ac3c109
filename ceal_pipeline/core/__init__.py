"""The functional core of CEAL, no Dagster, no torch: numpy and DuckDB (pyarrow for the
score-shard Parquet files in ``history/shards.py``); docs/ARCHITECTURE.md lists its modules."""
