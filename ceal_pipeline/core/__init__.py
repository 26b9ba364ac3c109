"""The functional core of CEAL: numpy and DuckDB only, no Dagster, no torch."""
