"""Inference: trained models as functions of images.

`trained_model` (a workdir, an exported file or the bundled model -> `InferenceModel`,
bundles, relighting by a light label) and `guided_upsample` (carries a low-resolution
relighting to a photo's full resolution). `relight_jax.relight` is the photo command.
"""
