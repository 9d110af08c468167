"""bench/winograd_layers.py's rows: every computation it times, each of the right kind,
and its totals and table; the timing itself is replaced by a stub (timings belong to the
benchmark, not to tests)."""

import json

import jax
import pytest

from bench import winograd_layers

_PARTS = ("fwd", "kgrad", "igrad")


def _stub_timer(monkeypatch):
  """Replaces the timer by one that records (function, args) and reports 1 ms."""
  calls = []

  def median_ms(function, args, steps):
    del steps
    calls.append((function, args))
    return 1.0

  monkeypatch.setattr(winograd_layers, "_median_ms", median_ms)
  return calls


def test_rows_name_each_layer_and_every_computation(monkeypatch, capsys):
  calls = _stub_timer(monkeypatch)
  winograd_layers.main(["--shapes=2,8,8,5,7;1,4,4,2,3", "--steps=1"])
  out = capsys.readouterr().out.splitlines()
  line = next(text for text in out if text.startswith("BENCH_JSON "))
  record = json.loads(line[len("BENCH_JSON "):])
  rows = record["rows"]
  assert [row["layer"] for row in rows] == ["2x8px 5->7", "1x4px 2->3"]
  timed = {f"{part}_{name}" for part in _PARTS for name in ("xla", "wx", "wn")}
  timed |= {"transform_wx", "transform_wn"}
  for row in rows:
    assert set(row) == {"layer", "auto_wx", "auto_wn"} | timed
    assert row["auto_wn"] == row["auto_wx"] == "-"  # maps this small: XLA's convolutions
  assert len(calls) == len(rows) * len(timed)
  # Each name's total sums its forward and both gradients over the layers.
  assert record["totals_ms"] == {name: 3.0 * len(rows) for name in ("xla", "wx", "wn")}
  assert any(text.startswith("layer ") for text in out)  # the human table's header


def test_each_computation_is_the_one_its_column_names(monkeypatch):
  calls = _stub_timer(monkeypatch)
  batch, size, in_channels, out_channels = 2, 8, 5, 7
  row = winograd_layers.measure((batch, size, size, in_channels, out_channels), steps=1)
  # The row's keys in the order measure times them: xla, then wx and wn.
  keys = [key for key in row if not key.startswith(("layer", "auto"))]
  assert len(keys) == len(calls)
  expected = {"fwd": (batch, size, size, out_channels),
              "kgrad": (3, 3, in_channels, out_channels),
              "igrad": (batch, size, size, in_channels)}
  for key, (function, args) in zip(keys, calls, strict=True):
    part = key.split("_")[0]
    if part in expected:  # traced only (jax.eval_shape): nothing is compiled or run
      assert jax.eval_shape(function, *args).shape == expected[part], key


def test_bad_shape_is_rejected(monkeypatch):
  _stub_timer(monkeypatch)
  with pytest.raises(SystemExit, match="not batch,H,W,in,out"):
    winograd_layers.main(["--shapes=2,8,8,5"])
