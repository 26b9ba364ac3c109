"""Everything ``ceal bench`` measures: CEAL's accuracy against random and full-pool
acquisition (MNIST, CIFAR-10, the 3D detector) and its compute figures (:mod:`.compute`).

The MNIST and CIFAR-10 protocol reproduces the protocol of Németh & Matuszka ("Compute-Efficient Active
Learning"): a class-balanced initial pool, a fixed number of acquisition rounds,
MC-Dropout acquisition (predictive entropy, variation ratios, BALD) over the
whole unlabeled pool or over a softmax-sampled candidate pool, test accuracy
after every round and a compute ledger per round.

Modules, one concept each:

- :mod:`.datasets`: read MNIST (IDX) and CIFAR-10 (python batches, JPEG
  ImageFolder, or its tarball) from a data folder, optional download.
- :mod:`.augmentation`: random brightness / contrast / horizontal flip in torch.
- :mod:`.networks`: the paper's MNIST CNN and VGG-11-BN, split into the part run
  once and the dropout-bearing part run ``T`` times.
- :mod:`.training`: training with early stopping, test accuracy, MC-Dropout
  class probabilities.
- :mod:`.strategies`: random, full-pool and CEAL acquisition over the core
  sampling / selection code.
- :mod:`.protocol`: the round loop, seeds and ledger.
- :mod:`.presets`: the paper's protocols and the cheap presets.
- :mod:`.results`: the results store (reruns add seeds) and the summary.
- :mod:`.report`: the accuracy-per-round plot and the markdown table.
- :mod:`.benchmark`: run a preset for new seeds into the store (CLI and assets).
- :mod:`.compute`: the compute figures (``ceal bench sampling|mc|round|catalog|pipeline``):
  what CEAL's sampling, MC-Dropout scoring, rounds and catalog cost, as JSON.
- :mod:`.detection`: the same questions for the 3D detector on synthetic driving
  data (``ceal bench detection``, the ``detection_benchmark`` asset), reusing
  :mod:`.strategies`, :mod:`.results`, :mod:`.report` and :mod:`.benchmark`.

Torch is imported only by the modules that train or run networks.
"""
