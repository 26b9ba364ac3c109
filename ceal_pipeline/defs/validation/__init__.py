"""The validation domain: MNIST, CIFAR-10 and 3D-detection benchmarks of CEAL as Dagster assets."""

import dagster as dg

from ceal_pipeline.defs.validation.assets import (
    cifar10_benchmark,
    detection_benchmark,
    mnist_benchmark,
    validation_assets,
)

validation_defs = dg.Definitions(assets=validation_assets)

__all__ = ["cifar10_benchmark", "detection_benchmark", "mnist_benchmark", "validation_assets", "validation_defs"]
