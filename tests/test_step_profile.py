"""bench/step_profile.py sorts a step's convolutions into forward, input- and kernel-gradient,
and the Winograd convolutions into products and transforms."""

import jax
import jax.numpy as jnp
import numpy as np

from bench import step_profile


def test_profile_step_separates_forward_and_both_gradients(tmp_path):
  def loss(image, kernel):
    out = jax.lax.conv_general_dilated(image, kernel, (1, 1), ((1, 1), (1, 1)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(out ** 2)

  image = jax.random.normal(jax.random.key(0), (2, 32, 32, 8))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 8, 8))
  compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(image, kernel).compile()
  totals, longest, (value, (image_grad, kernel_grad)) = step_profile.profile_step(
      compiled, (image, kernel), tmp_path / "trace", top=2)
  assert {"conv forward", "conv input-grad", "conv kernel-grad"} <= set(totals), totals
  # The `top` longest thunks, longest first, each of a kind summed in totals.
  assert len(longest) == 2 and longest == sorted(longest, reverse=True)
  assert all(kind in totals for _, kind, _ in longest)
  # The profiled call is the compiled function's ordinary call: its outputs are returned.
  np.testing.assert_allclose(value, loss(image, kernel), rtol=1e-5)
  assert image_grad.shape == image.shape and kernel_grad.shape == kernel.shape
  assert list(tmp_path.glob("trace/**/perfetto_trace.json.gz"))


def test_profile_step_names_winograd_products_and_transforms(tmp_path):
  from relight_jax.cpu_kernels import winograd  # pylint: disable=g-import-not-at-top
  conv = winograd.conv_function("winograd", "winograd")

  def loss(image, kernel):
    out = conv(image, kernel, (1, 1), ((1, 1), (1, 1)),
               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(out ** 2)

  image = jax.random.normal(jax.random.key(0), (2, 32, 32, 8))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 8, 8))
  compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(image, kernel).compile()
  totals, _, _ = step_profile.profile_step(compiled, (image, kernel), tmp_path / "trace")
  assert {"winograd product", "winograd transform"} <= set(totals), totals
  assert not any(kind.startswith("conv ") for kind in totals), totals
