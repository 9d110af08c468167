"""Where a compiled step spends its time: one profiled call, summed by kind of operation.

`profile_step(compiled, args, out_dir)` runs the compiled executable once under
`jax.profiler.trace` (a Perfetto trace is written to out_dir) and sums the duration of
every XLA thunk (one fused kernel or library call each) by kind, read from the
optimised HLO's op metadata:

  conv forward       convolutions of the forward pass;
  conv kernel-grad   convolutions whose window is as large as the image (the gradient
                     with respect to the kernel: XLA convolves the activations with
                     the output gradient);
  conv input-grad    other convolutions under `transpose(jvp(...))` (the gradient with
                     respect to the activations);
  winograd product   the batched matrix products of cpu_kernels/winograd.py's convolutions;
  winograd transform their input, kernel and output transforms;
  other              everything else (BatchNorm, PReLU, concatenations, transposes,
                     the loss, Adam).

Thunks of the two XLA:CPU worker threads can overlap, so the sum may exceed the wall
time of the step. On a GPU the events are kernels, matched to HLO by their `hlo_op`
argument; the Perfetto trace holds the time line. Used by
`python -m bench.train_step --profile_dir=DIR`.
"""

import collections
import glob
import gzip
import json
import pathlib
import re

import jax

_WRAPPERS = ("ThunkExecutor", "$", "SlinkyThreadPool", "end:", "PjitFunction",
             "CommonPjRt", "ParseArguments", "Handle input", "Allocate", "Wait for",
             "PythonRefManager", "ThreadpoolListener")
# A kernel-gradient convolution's window spans the activations (16 px and more at the
# paper's sizes); the forward and input-gradient windows are the kernels (<= 7).
_MAX_KERNEL = 7


def _instruction(hlo, name):
  match = re.search(r"\n\s*(?:ROOT )?%?" + re.escape(name) + r" = ([^\n]*)", hlo)
  return match.group(1) if match else None


def _kind(hlo, name):
  line = _instruction(hlo, name)
  if line is None:
    return "other", ""
  op_name = re.search(r'op_name="([^"]*)"', line)
  op_name = op_name.group(1) if op_name else ""
  called = re.search(r"calls=%?([\w.\-]+)", line)
  body = line
  if called:
    computation = re.search(r"\n%?" + re.escape(called.group(1)) + r" [^\n]*\{\n(.*?)\n\}",
                            hlo, re.S)
    body = computation.group(1) if computation else line
  if " convolution(" not in body:
    if "winograd" in op_name:  # cpu_kernels/winograd.py's named scope
      return ("winograd product" if re.search(r" dot\(", body) else "winograd transform",
              op_name)
    return "other", op_name
  window = re.search(r"window=\{size=(\d+)x", body)
  # The window first: XLA may leave a kernel-gradient convolution without op metadata.
  if window and int(window.group(1)) > _MAX_KERNEL:
    return "conv kernel-grad", op_name
  if "transpose(" in op_name:
    return "conv input-grad", op_name
  return "conv forward", op_name


def profile_step(compiled, args, out_dir, top=8):
  """Profiles one call of compiled(*args) and sums thunk time by kind.

  Args:
    compiled: a compiled jitted function (`jax.jit(f).lower(...).compile()`).
    args: its arguments (donated buffers are consumed: pass fresh ones).
    out_dir: where the Perfetto trace goes (created).
    top: how many of the longest thunks to list.

  Returns:
    (dict kind -> milliseconds, list of (ms, kind, op name) of the `top` longest thunks,
    the call's outputs).
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  with jax.profiler.trace(str(out_dir), create_perfetto_trace=True):
    outputs = jax.block_until_ready(compiled(*args))
  traces = sorted(glob.glob(str(out_dir / "**" / "perfetto_trace.json.gz"), recursive=True))
  if not traces:
    raise RuntimeError(f"jax.profiler wrote no perfetto_trace.json.gz under {out_dir}")
  with gzip.open(traces[-1]) as file:
    trace = json.load(file)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  # Device work carries the HLO instruction it runs in args.hlo_op (XLA:CPU's thunks and
  # GPU kernels alike, whose event names are kernel names); without any, the event names.
  complete = [event for event in events if event.get("ph") == "X"]
  named = [(event["args"]["hlo_op"], event["dur"]) for event in complete
           if "hlo_op" in event.get("args", {})]
  if not named:
    named = [(event["name"], event["dur"]) for event in complete
             if not event["name"].startswith(_WRAPPERS)]
  per_thunk = collections.defaultdict(float)
  for name, microseconds in named:
    per_thunk[name] += microseconds / 1e3
  hlo = compiled.as_text()
  totals = collections.defaultdict(float)
  rows = []
  for name, ms in per_thunk.items():
    kind, op_name = _kind(hlo, name)
    totals[kind] += ms
    rows.append((ms, kind, op_name.split("/", 1)[-1] or name))
  rows.sort(reverse=True)
  return dict(totals), rows[:top], outputs
