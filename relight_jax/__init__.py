"""relight_jax: any-to-any image relighting in JAX/Flax (reimplementation of arXiv 2006.02333)."""

__version__ = "0.1.0"


def load_pretrained(folder=None):
  """The bundled reference model (relight_jax/pretrained/MODEL_CARD.md) for relight.relight.

  Imports JAX and the model code on first call only: importing relight_jax stays light.
  See trained_model.load_pretrained.
  """
  from relight_jax.inference import trained_model  # pylint: disable=g-import-not-at-top
  return trained_model.load_pretrained(folder)
