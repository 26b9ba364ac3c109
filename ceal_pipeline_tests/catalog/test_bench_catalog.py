"""`ceal bench catalog` prints one JSON line with the figures issue 10 asks for (tiny N; no timing asserted)."""

from __future__ import annotations

import json

from ceal_pipeline.cli import main as ceal


def test_bench_catalog_prints_one_json_line_with_ingest_incremental_and_lookup_figures(tmp_path, capsys):
    assert ceal(["bench", "catalog", "--frames", "300", "--frames-per-file", "100", "--boxes", "4", "--lookup", "16",
                 "--workers", "1", "--workdir", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert result["frames"] == 300 and result["info_files"] == 3
    assert result["incremental_frames"] == 3 and result["incremental_units_skipped"] == 3
    assert result["shard_lookup_frames"] == 16 and result["shard_lookup_boxes"] > 0
    for key in ("ingest_s", "incremental_s", "shard_lookup_s", "peak_rss_mb"):
        assert result[key] > 0
    # the unpickling floor is a part of the parser processes' time, which the ingest's wall time bounds per worker
    assert 0 < result["ingest_unpickle_s"] <= result["ingest_parser_s"]
    assert result["ingest_workers"] == 1 and result["ingest_parser_s"] <= result["ingest_s"]
