"""relight_jax: any-to-any image relighting in JAX/Flax (reimplementation of arXiv 2006.02333)."""

__version__ = "0.1.0"
