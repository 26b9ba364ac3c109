"""Specification of `ceal bench mc`: reading frames and running the model are reported apart,
next to the end-to-end figure, and the loader-fed scores are those of preloaded batches."""

from __future__ import annotations

import argparse
import json

from ceal_pipeline.validation.compute import mc_dropout


def test_mc_benchmark_reports_loading_model_and_end_to_end_throughput_apart(tmp_path):
    parser = argparse.ArgumentParser()
    mc_dropout.add_arguments(parser)
    args = parser.parse_args(["--config", "bevfusion_tiny", "--frames", "2", "--passes", "2", "--device", "cpu",
                              "--num-workers", "1", "--data-dir", str(tmp_path)])
    args.json = True
    result = mc_dropout.run(args)
    json.dumps(result)  # one JSON line
    assert result["config"] == "bevfusion_tiny" and result["frames"] == 2 and result["num_workers"] == 1
    for key in ("loading_frames_per_s", "model_frames_per_s", "scoring_frames_per_s",
                "head_only_s_per_frame", "full_s_per_frame", "speedup"):
        assert result[key] > 0, key
    assert result["loader_scores_identical"] is True
    assert result["backbone_passes_head"] == 2 and result["backbone_passes_full"] == 4
