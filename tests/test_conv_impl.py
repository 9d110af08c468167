"""model.conv_impl: every convolution of the models goes through the one seam
(models/registry.py), and the CPU kernels compute the same model as XLA's convolutions."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import unoptimised_jit

from relight_jax.config import defaults
from relight_jax.cpu_kernels import winograd
from relight_jax.models import registry


def _assert_close(actual, expected, rtol=1e-4, err_msg=""):
  """Equal up to float32 rounding: max abs difference <= rtol x max |expected|."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = np.abs(expected).max()
  assert scale > 0, err_msg
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale, err_msg=err_msg)


def test_bad_conv_impl_is_named():
  config = defaults.model_section("envmap")
  config.conv_impl = "fast"
  with pytest.raises(ValueError,
                     match=r"model.conv_impl='fast' is not one of \('xla', 'cpu_fast'\)"):
    registry.create_model(config)


def test_one_conv_module_per_setting_reaches_every_layer():
  xla, fast = (registry.conv_module(impl) for impl in ("xla", "cpu_fast"))
  assert xla is nn.Conv and fast is registry.conv_module("cpu_fast")
  assert fast.keywords["conv_general_dilated"] is winograd.conv_function("auto", "auto", "auto")
  config = defaults.model_section("envmap_scene")
  config.width, config.depth, config.bottleneck_convs = 0.125, 2, 1
  image = jnp.zeros((1, 32, 32, 3))
  calls = []

  def counting(*args, **kwargs):
    calls.append(args[1].shape)
    return jax.lax.conv_general_dilated(*args, **kwargs)

  model = registry.create_model(config, conv=functools.partial(nn.Conv,
                                                               conv_general_dilated=counting))
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                             image, image)
  kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(
      variables["params"]) if jax.tree_util.keystr(path).endswith("['kernel']")
             and len(leaf.shape) == 4]
  # Every conv kernel of the model was applied through the module passed in.
  assert kernels and sorted(set(calls)) == sorted(set(kernels))
  discriminator = registry.create_discriminator(config)
  assert discriminator.conv is xla or discriminator.conv is fast


def test_relighter_outputs_and_gradients_agree_with_xla():
  grads, relit = {}, {}
  image = jax.random.uniform(jax.random.key(6), (2, 32, 32, 3))
  for setting in ("xla", "winograd"):
    config = defaults.model_section("envmap_scene")
    config.width = 0.125
    config.depth = 2  # a small model: Winograd everywhere compiles slowly
    config.bottleneck_convs = 1
    function = winograd.conv_function(setting, setting)
    conv = nn.Conv if function is None else functools.partial(nn.Conv,
                                                              conv_general_dilated=function)
    model = registry.create_model(config, conv=conv)
    variables = unoptimised_jit(functools.partial(model.init, train=False))(
        jax.random.key(7), image, image)

    def loss(params, model=model, variables=variables):
      outputs = model.apply({**variables, "params": params}, image, image[::-1], train=False)
      return jnp.mean((outputs["relit"] - image) ** 2), outputs["relit"]

    grads[setting], relit[setting] = unoptimised_jit(jax.grad(loss, has_aux=True))(
        variables["params"])
  _assert_close(relit["winograd"], relit["xla"])
  flat_xla = jax.tree_util.tree_leaves_with_path(grads["xla"])
  flat_winograd = jax.tree.leaves(grads["winograd"])
  for (path, expected), actual in zip(flat_xla, flat_winograd, strict=True):
    if np.abs(np.asarray(expected)).max() > 0:
      _assert_close(actual, expected, rtol=1e-3, err_msg=jax.tree_util.keystr(path))
