"""Named protocols of the detection benchmark: ``quick``, ``cpu`` and ``gpu``.

All three run the default strategies (:func:`.strategies.default_detection_strategies`):
random; full-pool localization entropy, heatmap entropy and their combination;
CEAL with localization entropy at candidate pools of 2.5 %, 5 % and 10 % of the
unlabeled pool; CEAL at 10 % with pruning. The budget per round is about 2 % of
the pool, so that even the 2.5 % candidate pool can fill it.

- ``quick``: plumbing, not the claim: 240 frames (about 190 in the pool), a seed
  set of 24, 2 rounds of 4, 4 epochs then 1 warm-started epoch a round, one
  seed; a few minutes on a 2-core CPU.
- ``cpu``: the protocol that fits a shared 2-core CPU in two to two and a half
  hours for 3 seeds (measured, 1 torch thread: round 0 and random about 6
  minutes, each full-pool strategy about 8-10, each CEAL strategy about 4; about
  47 minutes a seed when nothing else runs): 1,250 frames in sequences of 4 (1,000 in the
  pool, 120 of the 250 val frames held out), a seed set of 40 (4 % of the
  pool), 3 rounds of 20 (2 %), 12 epochs for round 0 and 2 warm-started epochs
  a round after, T = 10 MC-Dropout passes. Pruning uses
  m = 2 (the pipeline's default is 3): with 3 acquisitions a frame is scored at
  most 3 times, so m = 3 could prune only in the last round, when it no longer
  saves anything.
- ``gpu``: the ``cpu`` protocol at 10x the scale for a machine with a GPU:
  12,500 frames (10,000 in the pool, 1,200 held out), a seed set of 400, 3
  rounds of 200, the same epochs, passes, fractions and pruning.

Any protocol field can be overridden (``get_detection_preset(name, overrides)``);
the overridden protocol gets its own key in the results store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ceal_pipeline.configuration.presets import amend_preset, choose_preset
from ceal_pipeline.validation.detection.protocol import DetectionProtocolConfig
from ceal_pipeline.validation.detection.strategies import default_detection_strategies, parse_detection_strategy
from ceal_pipeline.validation.presets import Preset

DETECTION_PRESET_NAMES = ("quick", "cpu", "gpu")
#: A :class:`~ceal_pipeline.validation.presets.Preset` whose protocol is a :class:`DetectionProtocolConfig`.
DetectionPreset = Preset

_CPU = DetectionProtocolConfig(frames=1250, frames_per_sequence=4, held_out_frames=120, initial_labeled=40,
                               acquire_per_round=20, rounds=3, epochs=12, fine_tune_epochs=2, mc_samples=10)
_PROTOCOLS = {
    "quick": DetectionProtocolConfig(frames=240, frames_per_sequence=4, held_out_frames=32, initial_labeled=24,
                                     acquire_per_round=4, rounds=2, epochs=4, fine_tune_epochs=1, mc_samples=10),
    "cpu": _CPU,
    "gpu": replace(_CPU, frames=10 * _CPU.frames, held_out_frames=10 * _CPU.held_out_frames,
                   initial_labeled=10 * _CPU.initial_labeled, acquire_per_round=10 * _CPU.acquire_per_round),
}
_REPEATS = {"quick": 1, "cpu": 3, "gpu": 3}


def get_detection_preset(name: str = "quick", overrides: dict[str, Any] | None = None,
                         strategies: list[str] | None = None, repeats: int | None = None) -> DetectionPreset:
    """The preset ``name`` with protocol ``overrides`` (None values ignored) applied."""
    protocol = amend_preset(choose_preset(_PROTOCOLS, name, "detection benchmark"), overrides,
                            "detection protocol", fixed=("dataset",))
    chosen = tuple(strategies) if strategies else tuple(default_detection_strategies())
    for strategy in chosen:
        parse_detection_strategy(strategy)
    return Preset(name, protocol, chosen, _REPEATS[name] if repeats is None else repeats)
