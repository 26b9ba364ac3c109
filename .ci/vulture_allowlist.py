# Names vulture (`make test`: `vulture ceal_pipeline .ci/vulture_allowlist.py --min-confidence 60`)
# reports as unused although something outside plain Python calls reads or calls them.
# Never executed; vulture only parses it. Anything else it reports has no product
# caller: delete it or call it, do not add it here. Test-only callers do not count
# (vulture scans ceal_pipeline/ alone), so a helper only tests need lives in the tests.
_ = object()

# pydantic: the model configuration and a field validator, called by pydantic.
_.model_config  # configuration/schema.py
_._known_device  # configuration/schema.py, @field_validator("device")
_.pool_count  # configuration/schema.py RoundSection: read as parameters["pool_count"]

# mmengine's registry: built by name from the model configs in models/ (type="...").
_.ConvFuser  # detector/bevfusion.py
_.CealBEVFusion  # detector/bevfusion.py
_.LSSCameraBranch  # detector/camera_lift.py
_.MCDropoutCenterHead  # detector/head.py

# mmdet3d's data samples: the model reads the ground truth from this attribute.
_.gt_instances_3d  # detector/mmdet3d_training.py

# PEP 562 module __getattr__: `from ceal_pipeline.detector import X` imports lazily.
__getattr__  # detector/__init__.py

# Fields of result records that reach their reader through dataclasses.asdict / to_dict
# (JSON lines, Dagster metadata, `ceal` output) or are returned for the caller to show.
_.units_seen  # catalog/report.py IngestReport (to_dict)
_.units_removed
_.parsed_files
_.unit_s
_.pool_subpopulations  # validation/detection/protocol.py DetectionStrategyRun (to_dict)
_.score_error_spearman
_.score_missed_spearman
_.validation_accuracy  # validation/training.py TrainingOutcome
_.frames_unchanged  # core/history/deliveries.py DeliveryResult
_.batch_id  # core/history/ingest.py IngestResult
_.shards_scored  # defs/acquisition/round_runner.py RoundReport
_.new_export
_.class_weights  # core/selection_policy.py Selection

# The detection presets' names: the CLI spells them out (no heavy import to build it) and a
# test holds that copy against this one.
_.DETECTION_PRESET_NAMES  # validation/detection/presets.py
