"""Config strings, presets, config files and the validation of numeric settings."""

import json
import math
import pathlib

import pytest
from absl import flags
from conftest import load_config
from ml_collections import config_flags

from relight_jax.config import config_utils
from relight_jax.config import defaults
from relight_jax.models import registry
from relight_jax.training import checkpointing

MODELS = tuple(spec.config_file.removesuffix(".py") for spec in registry.SPECS.values())
# A model's ReportTraining, for configs built by hand.
_REPORT = defaults.ReportTraining(batch_size=25, num_steps=120_000,
                                  pairing=defaults.REPORT_RULE)


def test_parse_arg_types_and_presets():
  args = config_utils.parse_arg("preset=paper,gan=True,data=synthetic,steps=7")
  assert args == defaults.ConfigArgs(preset="paper", gan=True, data="synthetic", steps=7)
  assert config_utils.parse_arg("smoke,bf16") == defaults.ConfigArgs(preset="smoke", bf16=True)
  assert config_utils.parse_arg(None) == defaults.ConfigArgs()


@pytest.mark.parametrize("arg, message", [
    ("colour=1", "unknown config argument 'colour'"),
    ("preset=huge", "unknown preset 'huge'"),
    ("gan=maybe", "expected a boolean"),
    ("steps=ten", "expected an integer"),
    ("wat", "neither key=value"),
])
def test_parse_arg_errors_name_the_problem(arg, message):
  with pytest.raises(ValueError, match=message):
    config_utils.parse_arg(arg)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_builds_each_preset(name):
  for preset in defaults.PRESETS:
    config = load_config(name, preset)
    assert config.model.name == name
  paper = load_config(name, "preset=paper,bf16,gan=True")
  assert (paper.data.image_size, paper.model.width) == (256, 1.0)
  assert paper.model.dtype == "bfloat16" and paper.train.gan and paper.loss.gan_weight > 0
  assert load_config(name, "data=synthetic_tiny").data.name == "vidit/synthetic_tiny"


def test_config_is_locked_against_typos():
  config = load_config("envmap")
  with pytest.raises(AttributeError):
    config.train.learnig_rate = 1.0


def test_loss_section_rejects_unknown_weight():
  with pytest.raises(ValueError, match="unknown loss weight 'envmap_wieght'"):
    defaults.loss_section("l1", envmap_wieght=1.0)


def test_save_and_load_config_round_trip(tmp_path):
  config = load_config("envmap", "smoke")
  checkpointing.save_config(config, tmp_path / "config.json")
  loaded = checkpointing.load_config(tmp_path / "config.json")
  assert loaded.to_dict() == config.to_dict()
  assert isinstance(loaded.model.predictor_hidden, tuple)


def test_load_config_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="training workdir"):
    checkpointing.load_config(tmp_path / "missing.json")
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    checkpointing.load_config(tmp_path / "bad.json")


def test_config_of_another_version_names_its_keys(tmp_path):
  # A workdir written before model.conv_impl existed, with the settings it replaced.
  config = load_config("envmap", "smoke").to_dict()
  del config["model"]["conv_impl"]
  config["model"]["conv_kernel_grad"] = "auto"
  path = tmp_path / "config.json"
  path.write_text(json.dumps(config))
  with pytest.raises(ValueError, match=r"config.json was written by another version.*"
                     r"lacks model.conv_impl \(default 'cpu_fast'\).*"
                     r"has no model.conv_kernel_grad"):
    checkpointing.load_config(path)


def test_config_from_before_a_switched_off_feature_loads_with_it_off(tmp_path):
  # A workdir written before the shadow model's keys existed: they mean "off", as then.
  config = load_config("geometry_envmap", "smoke").to_dict()
  for dotted in checkpointing.ADDED_KEYS:
    section, key = dotted.split(".")
    del config[section][key]
  path = tmp_path / "config.json"
  path.write_text(json.dumps(config))
  loaded = checkpointing.load_config(path)
  assert loaded.model.relit_shading is False
  assert loaded.loss.shading_weight == loaded.loss.relit_shading_weight == 0.0
  assert loaded.model.envmap_convention == "v1"
  expected = load_config("geometry_envmap", "smoke")
  expected.model.envmap_convention = "v1"
  assert loaded.to_dict() == expected.to_dict()


@pytest.mark.parametrize("name", ["envmap", "envmap_scene", "geometry_envmap"])
def test_config_from_before_envmap_conventions_loads_as_v1(tmp_path, name):
  # Workdirs written before model.envmap_convention were trained on the v1 maps: they
  # load, relight by labels and read their envmaps with those; new configs use the
  # original's maps.
  config = load_config(name, "smoke").to_dict()
  assert config["model"]["envmap_convention"] == "original"
  del config["model"]["envmap_convention"]
  path = tmp_path / "config.json"
  path.write_text(json.dumps(config))
  assert checkpointing.load_config(path).model.envmap_convention == "v1"


def test_bundled_model_loads_with_the_v1_envmaps_it_was_trained_on():
  bundled = pathlib.Path(checkpointing.__file__).parents[1] / "pretrained" / "config.json"
  assert "envmap_convention" not in json.loads(bundled.read_text())["model"]
  assert checkpointing.load_config(bundled).model.envmap_convention == "v1"


def _keys(config):
  return set(checkpointing._flat_items(config.to_dict()))  # pylint: disable=protected-access


def test_every_config_file_declares_a_registered_model_with_its_keys():
  # checkpointing checks an old workdir's config.json against its spec's config file.
  for path in sorted(config_utils.CONFIGS_DIR.glob("*.py")):
    config = config_utils.config_from_file(f"{path.name}:smoke")
    spec = registry.spec_of(config.model.name)
    reference = config_utils.config_from_file(f"{spec.config_file}:smoke")
    assert {key for key, _ in _keys(config)} == {key for key, _ in _keys(reference)}, path


@pytest.mark.parametrize("name, batch, pairing, steps", [
    ("envmap", 25, "different_scene,different_direction", 120_000),
    ("envmap_scene", 25, "different_scene,different_direction", 320_000),
    ("illumination_predictor", 8, "", 60_000)])
def test_paper_preset_is_the_original_training(name, batch, pairing, steps):
  config = load_config(name, "preset=paper")
  assert config.recipe == "report"
  assert (config.train.learning_rate, config.train.lr_decay) == (1e-3, "constant")
  assert (config.train.batch_size, config.data.pairing, config.train.num_steps) == (
      batch, pairing, steps)
  assert config.model.output == "direct" and config.data.extra_fraction == 0.0
  assert config.loss.gan_weight == 0.0  # the original never added the generator's GAN term
  # Our additions are a named recipe, at any size; every model evaluates on one rule.
  ours = load_config(name, "preset=paper,recipe=ours")
  assert (ours.model.output, ours.data.extra_fraction, ours.train.lr_decay) == (
      "residual", 0.5, "cosine")
  assert ours.eval.pairing == config.eval.pairing == "different_scene,different_direction"
  assert config.eval.split == "test" and config.data.eval_split == "validation"


def test_skip_link_variants_and_latent_losses_are_reachable():
  config = load_config("envmap", "smoke,disabled_skips=0+1,target_skips=9")
  assert config.model.disabled_skips == (0, 1) and config.model.target_skips == (9,)
  with pytest.raises(ValueError, match="expected skip-link indices"):
    config_utils.parse_arg("disabled_skips=a+b")
  with pytest.raises(ValueError, match="unknown recipe 'mine'"):
    config_utils.parse_arg("recipe=mine")
  config = load_config("illumination_predictor", "smoke", **{"loss.scene_latent_weight": 1.0})
  assert config.loss.latent_loss == "plain"


def test_config_from_file_accepts_names_and_paths():
  assert config_utils.config_from_file("envmap.py:smoke").data.image_size == 32
  assert config_utils.config_from_file(
      str(config_utils.CONFIGS_DIR / "envmap.py") + ":smoke").model.name == "envmap"
  with pytest.raises(FileNotFoundError, match="nope.py"):
    config_utils.config_from_file("nope.py")


@pytest.mark.parametrize("dotted, value, expected", [
    ("train.learning_rate", float("nan"), "a finite number > 0"),
    ("train.learning_rate", 0.0, "a finite number > 0"),
    ("train.learning_rate", -1e-3, "a finite number > 0"),
    ("train.discriminator_learning_rate", float("inf"), "a finite number > 0"),
    ("train.b1", 1.0, r"a number in \[0, 1\)"),
    ("train.b2", -0.1, r"a number in \[0, 1\)"),
    ("train.b2", float("nan"), r"a number in \[0, 1\)"),
    ("train.batch_size", 0, "a positive integer"),
    ("eval.batch_size", -8, "a positive integer"),
    ("train.num_steps", 0, "a positive integer"),
    ("train.log_every", 0, "a positive integer"),
    ("train.image_every", -1, "a positive integer"),
    ("train.checkpoint_every", 0, "a positive integer"),
    ("train.eval_every", 0, "a positive integer"),
    ("train.eval_every", True, "a positive integer"),
    ("eval.num_pairs", 0, "a positive integer"),
    ("data.image_size", 0, "a positive multiple of 4"),
    ("data.image_size", 42, "a positive multiple of 4, as the encoder halves the image "
     r"model.depth \+ 1 = 2 times"),
    ("model.width", 0.0, "a finite channel multiplier > 0"),
    ("model.width", float("nan"), "a finite channel multiplier > 0"),
    ("loss.envmap_weight", -1.0, "a finite weight >= 0"),
    ("loss.reconstruction_weight", float("nan"), "a finite weight >= 0"),
    ("loss.gan_weight", float("inf"), "a finite weight >= 0"),
])
def test_validate_names_the_key_the_value_and_what_is_expected(dotted, value, expected):
  config = load_config("envmap", "smoke")
  assert config_utils.validate(config) is config  # The presets themselves are valid.
  section, key = dotted.split(".")
  with config.unlocked():
    config[section][key] = value
  with pytest.raises(ValueError, match=f"^config {dotted}={value!r}: expected {expected}") as (
      raised):
    config_utils.validate(config)
  assert "\n" not in str(raised.value) and f"--config.{dotted}=" in str(raised.value)


def test_image_size_must_be_a_multiple_of_the_encoders_downsampling():
  config = load_config("envmap", "smoke", **{"model.depth": 2, "data.image_size": 36})
  with pytest.raises(ValueError, match="multiple of 8"):
    config_utils.validate(config)
  config = load_config("envmap", "smoke", **{"model.depth": 2, "data.image_size": 48})
  config_utils.validate(config)


def test_finalize_refuses_impossible_settings_after_the_presets():
  with pytest.raises(ValueError, match="config train.num_steps=-5: expected a positive"):
    load_config("envmap", "smoke,steps=-5")
  config = defaults.base_config()
  config.model = defaults.model_section("envmap")
  config.loss = defaults.loss_section("l1", envmap_weight=-1.0)
  with pytest.raises(ValueError, match="config loss.envmap_weight=-1.0"):
    config_utils.finalize(config, "smoke", _REPORT)
  config = defaults.base_config()
  config.model = defaults.model_section("envmap")
  config.loss = defaults.loss_section("l1")
  config.train.b2 = 1.0  # No preset sets b2: the bad value reaches finalize's check.
  with pytest.raises(ValueError, match=r"config train.b2=1.0: expected a number in \[0, 1\)"):
    config_utils.finalize(config, "paper", _REPORT)


def test_command_line_overrides_bypass_finalize_so_validate_is_needed():
  argv = ["main", f"--config={config_utils.CONFIGS_DIR / 'envmap.py'}:smoke",
          "--config.train.learning_rate=nan"]
  flag_values = flags.FlagValues()
  # As relight_jax/main.py defines it; sys_argv stands in for the process's command line.
  config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True,
                                  sys_argv=argv)
  flag_values(argv)
  config = flag_values.config
  assert math.isnan(config.train.learning_rate)  # finalize ran before the override.
  with pytest.raises(ValueError, match="config train.learning_rate=nan: expected a finite"):
    config_utils.validate(config)


def test_main_refuses_an_impossible_override_before_writing(tmp_path):
  import subprocess
  import sys
  workdir = tmp_path / "run"
  completed = subprocess.run(
      [sys.executable, "-m", "relight_jax.main", "--config=configs/envmap.py:smoke",
       f"--workdir={workdir}", "--config.train.learning_rate=nan"],
      capture_output=True, text=True, timeout=120, check=False,
      cwd=config_utils.CONFIGS_DIR.parent)
  assert completed.returncode == 1
  assert completed.stderr.strip().splitlines() == [
      "error: config train.learning_rate=nan: expected a finite number > 0 (set it with "
      "--config.train.learning_rate=...)"]
  assert not workdir.exists()
