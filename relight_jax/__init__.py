"""relight_jax: any-to-any image relighting in JAX/Flax (reimplementation of arXiv 2006.02333).

  model = relight_jax.load_pretrained()
  relit = model(photo, light="W,3500")   # same type and size as `photo` (relighter.py)
"""

__version__ = "0.1.0"


def load_pretrained(folder=None):
  """The bundled reference model (relight_jax/pretrained/MODEL_CARD.md), callable on photos.

  Imports JAX and the model code on first call only: importing relight_jax stays light.
  See relighter.load_pretrained.
  """
  from relight_jax import relighter  # pylint: disable=g-import-not-at-top
  return relighter.load_pretrained(folder)


def load(source, *, step=None):
  """A workdir's, a bundle's or an exported file's model, callable on photos.

  See relighter.load.
  """
  from relight_jax import relighter  # pylint: disable=g-import-not-at-top
  return relighter.load(source, step=step)
