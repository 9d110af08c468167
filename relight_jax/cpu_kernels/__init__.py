"""Faster CPU convolutions, chosen for a model by one setting (`model.conv_impl`).

The report's models are written with flax's `nn.Conv`; this package only changes how
XLA:CPU computes some of their convolutions, never what they compute (outputs and
gradients equal XLA's up to float32 rounding; tests/ beside this file):

  winograd.py        3x3 stride-1 convolutions and both their gradients by Winograd's
                     minimal filtering (Lavin & Gray 2016), 4x fewer multiplications;
  native_tiles.py    its tile transforms in C++ (winograd_tiles.cc, via XLA's FFI);
  space_to_depth.py  the 7x7 stem as a 3x3 Winograd convolution over 2x2 blocks;
  patch_gradient.py  the strided convolutions' kernel gradient as one patch product.

`conv_general_dilated(impl)` is the whole interface for the models: the function
`nn.Conv` calls in place of `lax.conv_general_dilated` (its field of that name).
docs/cpu_kernels.md says which layers each rewrite takes and what it gains.
"""

from relight_jax.cpu_kernels import winograd

# model.conv_impl: 'xla' = XLA's own convolutions everywhere; 'cpu_fast' = the rewrites
# above on the CPU backend for the layers where they measured faster (winograd.py's
# `auto` rules), XLA's convolutions elsewhere and on every other backend.
IMPLS = ("xla", "cpu_fast")


def conv_general_dilated(impl):
  """The `conv_general_dilated` for flax's `nn.Conv` under a `model.conv_impl` value.

  Args:
    impl: one of IMPLS.

  Returns:
    A function with `lax.conv_general_dilated`'s signature, or None for 'xla' (nn.Conv
    then calls `lax.conv_general_dilated` itself).

  Raises:
    ValueError: impl is not one of IMPLS.
  """
  if impl not in IMPLS:
    raise ValueError(f"model.conv_impl={impl!r} is not one of {IMPLS}")
  if impl == "xla":
    return None
  return winograd.conv_function("auto", "auto", "auto")
