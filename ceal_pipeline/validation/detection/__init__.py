"""The detection benchmark: CEAL against full-pool and random acquisition for the 3D detector.

The question of issue 14: does the nightly selection make the BEVFusion-like
detector better per labeled frame than random picks, at a few percent of the
compute of rescoring the whole pool, and do the detection-aware acquisition
functions see what localization entropy misses? Measured on the built-in
synthetic driving data (hard sub-populations: night, rain, far, rare classes)
with the real detector (``bevfusion_tiny`` by default), its real training,
MC-Dropout scoring and held-out mAP, and the pipeline's own round rules
(``core.round``, ``core.selection``, ``core.pruning``) through
:func:`ceal_pipeline.validation.strategies.acquire`.

Modules, one concept each (torch only in :mod:`.protocol`):

- :mod:`.strategies`: strategy names (random, full pool per function, CEAL at a
  candidate-pool fraction, with or without pruning).
- :mod:`.data`: the synthetic dataset, its pool / held-out split and the
  sub-population of every frame.
- :mod:`.score_error`: does a frame's acquisition value track its detection
  error (Spearman, held-out frames)?
- :mod:`.protocol`: the protocol's settings and key, and the round loop of one run seed.
- :mod:`.presets`: ``quick``, ``cpu`` and ``gpu``.
- :mod:`.results`: mean ± std over seeds and the one-line JSON summary.
- :mod:`.report`: the mAP-per-round plot and the markdown tables.
- :mod:`.benchmark`: run a preset for new seeds into the results store (CLI and asset).
"""
