"""The `vidit` TFDS dataset (synthetic VIDIT-like renders and the real VIDIT releases).

Importing this package registers the builder under the name "vidit", so that
`tfds.builder("vidit/<config>")` and `tfds.data_source("vidit/<config>", ...)` find it.
"""

from relight_jax.datasets.vidit.vidit_dataset_builder import Vidit

__all__ = ["Vidit"]
