"""Named protocols of the detection benchmark: ``quick``, ``cpu`` and ``gpu``.

All three run the selection-stage strategies (:func:`.strategies.selection_stage_strategies`):
random; full-pool heatmap entropy; CEAL with it at a 5 % candidate pool; CEAL +
class balance; + diversity; + both; + both + pruning; + both under a money
budget. Each strategy of a run seed starts from the same seed set and the same
round-0 detector, so results are paired differences to random
(:mod:`.paired`).

- ``quick``: plumbing, not the claim: 240 frames (about 190 in the pool), 24
  held-out sequences, a seed set of 12, 2 rounds of 4, 3 epochs then 4
  warm-started steps a round, T = 4, two seeds (so a paired interval exists).
- ``cpu``: the protocol that answers the question on a 2-core CPU in about 70
  minutes for 5 seeds (68 min for issue 18's result, 40 runs at a load average of 2), run as two processes of one torch thread each (seeds
  split between them; see the closing command of issue 18): 1,000 frames in
  sequences of 4 (about 800 in the pool), a held-out set of 150 one-frame
  sequences, a seed set of 40, **6 rounds of 20** (so pruning, m = 2, can act
  from the third scoring on), 15 epochs for round 0 and a fixed **50 optimiser
  steps** warm-started each later round (bought frames get their share however
  large the labeled set has grown; the warm-up is at most a fifth of them),
  T = 10 MC-Dropout passes. Affordable rather than smaller: the held-out set is
  150 independent frames (not 120 frames of 62 sequences), the round-0
  MC passes over the pool are shared by every strategy of a seed, later rounds
  train a fixed number of steps instead of a growing number of epochs, and
  the two cores each run a seed. The run of issue 18's result (seeds 100-104
  on generator seed 1), from the repository root::

      export CEAL_HOME=$PWD/.ceal OMP_NUM_THREADS=1
      ceal bench detection --preset cpu --generator-seed 1 --seeds 100,101,102 \
          --threads 1 --num-workers 0 > detection-a.log 2>&1 &
      sleep 180   # the first process generates the dataset; the second only reads it
      ceal bench detection --preset cpu --generator-seed 1 --seeds 103,104 \
          --threads 1 --num-workers 0 > detection-b.log 2>&1 &
      wait
      ceal bench detection --preset cpu --generator-seed 1 --summary-only
- ``gpu``: the ``cpu`` protocol at 10x the scale for a machine with a GPU:
  10,000 frames, 1,500 held out, a seed set of 400, 6 rounds of 200, the same
  epochs, steps, passes, fractions and pruning.

Any protocol field can be overridden (``get_detection_preset(name, overrides)``);
the overridden protocol gets its own key in the results store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ceal_pipeline.configuration.presets import amend_preset, choose_preset
from ceal_pipeline.validation.detection.protocol import DetectionProtocolConfig
from ceal_pipeline.validation.detection.strategies import selection_stage_strategies, parse_detection_strategy
from ceal_pipeline.validation.presets import Preset

DETECTION_PRESET_NAMES = ("quick", "cpu", "gpu")
#: A :class:`~ceal_pipeline.validation.presets.Preset` whose protocol is a :class:`DetectionProtocolConfig`.
DetectionPreset = Preset

_CPU = DetectionProtocolConfig(frames=1000, frames_per_sequence=4, held_out_frames=150, initial_labeled=40,
                               acquire_per_round=20, rounds=6, epochs=15, fine_tune_steps=50, mc_samples=10)
_PROTOCOLS = {
    "quick": DetectionProtocolConfig(frames=240, frames_per_sequence=4, held_out_frames=24, initial_labeled=12,
                                     acquire_per_round=4, rounds=2, epochs=3, fine_tune_steps=4, mc_samples=4),
    "cpu": _CPU,
    "gpu": replace(_CPU, frames=10 * _CPU.frames, held_out_frames=10 * _CPU.held_out_frames,
                   initial_labeled=10 * _CPU.initial_labeled, acquire_per_round=10 * _CPU.acquire_per_round),
}
_REPEATS = {"quick": 2, "cpu": 5, "gpu": 5}


def get_detection_preset(name: str = "quick", overrides: dict[str, Any] | None = None,
                         strategies: list[str] | None = None, repeats: int | None = None) -> DetectionPreset:
    """The preset ``name`` with protocol ``overrides`` (None values ignored) applied."""
    protocol = amend_preset(choose_preset(_PROTOCOLS, name, "detection benchmark"), overrides,
                            "detection protocol", fixed=("dataset",))
    chosen = tuple(strategies) if strategies else tuple(selection_stage_strategies())
    for strategy in chosen:
        parse_detection_strategy(strategy)
    return Preset(name, protocol, chosen, _REPEATS[name] if repeats is None else repeats)
