"""bench/winograd_layers.py runs on a tiny layer and reports every computation it times."""

import json

from bench import winograd_layers


def test_reports_each_computation_for_a_tiny_layer(capsys):
  winograd_layers.main(["--shapes=2,8,8,5,7", "--steps=1"])
  out = capsys.readouterr().out.splitlines()
  line = next(text for text in out if text.startswith("BENCH_JSON "))
  (row,) = json.loads(line[len("BENCH_JSON "):])["rows"]
  assert row["layer"] == "2x8px 5->7"
  assert row["auto_wn"] == row["auto_wx"] == "-"  # 8 px maps: XLA's convolutions
  timed = [k for k in row if k.endswith(("_xla", "_wx", "_wn")) and not k.startswith("auto")]
  assert len(timed) == 11 and all(row[k] > 0 for k in timed)
