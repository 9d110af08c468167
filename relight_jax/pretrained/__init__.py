"""The bundled reference model: its config, variables and model card (data, not code).

Load it with `relight_jax.load_pretrained()`; `python -m relight_jax.relight` uses it when
no --workdir or --exported is given. `python -m relight_jax.pretrained --workdir=RUN`
rewrites this folder from a training workdir (inference.save_bundle; only with --overwrite,
else --output=DIR writes a new bundle elsewhere); MODEL_CARD.md says
how the shipped one was trained and what it measures.
"""
