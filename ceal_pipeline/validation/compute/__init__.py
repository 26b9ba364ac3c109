"""The compute figures behind `ceal bench sampling|mc|round|catalog|pipeline`: each returns one dict of
measured figures (printed as JSON)."""
