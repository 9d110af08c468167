"""The light syntax (lights.parse_lighting), mixing label outputs in linear light
(inference/light_mix.py), sweeps (inference/sweep.py) and their files (common/animation.py).

A fake relighter stands in for a model: its output for a label is a flat image whose
value encodes the label, so every mixing weight can be read back exactly.
"""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from relight_jax import relight
from relight_jax.common import animation
from relight_jax.data import envmap
from relight_jax.data import lights
from relight_jax.inference import guided_upsample
from relight_jax.inference import light_mix
from relight_jax.inference import sweep
from relight_jax.inference import trained_model

SIZE = 16


@pytest.mark.parametrize("text, azimuth, kelvin, shift, intensity", [
    ("W,3500", 270.0, 3500.0, 0.0, 1.0),
    ("200,4200", 200.0, 4200.0, 0.0, 1.0),
    ("22.5,4200K,x1.5", 22.5, 4200.0, 0.0, 1.5),
    ("x2,ne", 45.0, None, 0.0, 2.0),
    ("W", 270.0, None, 0.0, 1.0),
    ("200", 200.0, None, 0.0, 1.0),
    ("4200K", None, 4200.0, 0.0, 1.0),
    ("+800K", None, None, 800.0, 1.0),
    ("-800k", None, None, -800.0, 1.0),
    ("360,2500", 0.0, 2500.0, 0.0, 1.0),
])
def test_light_syntax_reads_every_field(text, azimuth, kelvin, shift, intensity):
  (term,) = lights.parse_lighting(text).terms
  assert (term.azimuth_deg, term.temperature_k, term.temperature_shift_k,
          term.intensity) == (azimuth, kelvin, shift, intensity)
  assert term.needs_estimate == (azimuth is None or kelvin is None)
  # The canonical text reads back as the same light (batch file names come from it).
  assert lights.parse_lighting(term.text).terms == (term,)


def test_several_lights_are_joined_by_semicolons():
  lighting = lights.parse_lighting("90,3500; 270,6500,x0.5")
  assert [(t.azimuth_deg, t.temperature_k, t.intensity) for t in lighting.terms] == [
      (90.0, 3500.0, 1.0), (270.0, 6500.0, 0.5)]
  assert lighting.stem == "90_3500+270_6500_x0.5"
  assert lighting.label is None


@pytest.mark.parametrize("text, label", [
    ("W,3500", (3500.0, 6)), ("90,4000", (4000.0, 2)), ("200,4200", None), ("W", None),
    ("W,3500,x2", None), ("W,3500;E,3500", None)])
def test_a_lighting_is_a_label_only_when_one_model_call_makes_it(text, label):
  assert lights.parse_lighting(text).label == label


@pytest.mark.parametrize("text, message", [
    ("W,3500,1", "cannot read '1'"),
    ("X,3500", "direction 'X' is not one of N, NE"),
    ("3500,W", "azimuth 3500 is outside 0-360 degrees .* 3500K"),
    ("4200", "a temperature alone takes a K: 4200K"),
    ("W,9000", "9000 K is outside the training data's 2500-6500 K"),
    ("W,E", "two directions"),
    ("W,3500,x0", "intensity 'x0' is outside"),
    ("+5000K", "more than the training data's range"),
    ("W;", "an empty light"),
    ("", "expected 1 to 8 lights"),
])
def test_bad_lights_say_which_field_and_what_is_expected(text, message):
  with pytest.raises(ValueError, match=message):
    lights.parse_lighting(text)


def test_relight_help_shows_the_light_syntax(capsys):
  with pytest.raises(SystemExit):
    relight.main(["--help"])
  assert lights.LIGHT_SYNTAX.splitlines()[1] in capsys.readouterr().out


@pytest.mark.parametrize("k", range(8))
def test_an_azimuth_on_a_direction_is_that_label_alone(k):
  assert light_mix.direction_weights(45.0 * k) == [(k, 1.0)]


def test_an_azimuth_halfway_weighs_both_neighbours_equally():
  assert light_mix.direction_weights(22.5) == [(0, 0.5), (1, 0.5)]
  assert light_mix.direction_weights(337.5) == [(7, 0.5), (0, 0.5)]  # wraps around N
  (first, first_weight), (second, second_weight) = light_mix.direction_weights(200.0)
  assert (first, second) == (4, 5)
  assert (first_weight, second_weight) == pytest.approx((5 / 9, 4 / 9))


def test_temperature_weights_mix_the_rendered_colours_nearest_the_asked_one():
  assert light_mix.temperature_weights(3500) == [(3500, 1.0)]
  (low, w_low), (high, w_high) = light_mix.temperature_weights(4000)
  assert (low, high) == (3500, 4500) and w_low + w_high == pytest.approx(1.0)
  assert 0.3 < w_high < 0.7
  # Closer to 4500 K weighs 4500 K more.
  assert light_mix.temperature_weights(4400)[1][1] > w_high


def test_the_mix_is_a_sum_in_linear_light():
  dark, bright = np.full((2, 2, 3), 0.2, np.float32), np.full((2, 2, 3), 0.8, np.float32)
  mixed = light_mix.mix({"a": dark, "b": bright}, {"a": 0.5, "b": 0.5})
  expected = guided_upsample.linear_to_srgb(
      0.5 * (guided_upsample.srgb_to_linear(dark) + guided_upsample.srgb_to_linear(bright)))
  np.testing.assert_allclose(mixed, expected, atol=1e-6)
  assert not np.allclose(mixed, 0.5, atol=0.02)  # not a mean of the sRGB values
  # Past white it clips, as the renderer does.
  np.testing.assert_allclose(light_mix.mix({"b": bright}, {"b": 3.0}), 1.0, atol=1e-6)


def _label_value(kelvin, direction):
  return np.float32(0.05 + 0.1 * direction + (kelvin - 2500) / 100000)


def _fake_relighter(*, any_temperature=False, estimate=(100.0, 4000.0), calls=None):
  """An InferenceModel whose output for a label is a flat image of _label_value."""

  def relight_light_fn(input_image, kelvin, direction):
    if not any_temperature:
      lights.temperature_index_of(kelvin)  # a reference-image model: rendered ones only
    if calls is not None:
      calls.append((kelvin, direction))
    return np.full(np.shape(input_image), _label_value(kelvin, direction), np.float32)

  def estimate_light_fn(input_image, white=False):
    return np.full(len(input_image), estimate[0]), np.full(len(input_image), estimate[1])

  return trained_model.InferenceModel(
      relight_fn=None, image_size=SIZE, size_multiple=8, description="fake",
      relight_light_fn=relight_light_fn, any_label_temperature=any_temperature,
      envmap_convention="original",
      estimate_light_fn=estimate_light_fn if estimate else None)


def _mixer(**kwargs):
  return light_mix.LightMixer(_fake_relighter(**kwargs),
                              np.full((SIZE, SIZE, 3), 0.5, np.float32))


@pytest.mark.parametrize("k", range(8))
def test_azimuth_45k_gives_exactly_label_ks_output(k):
  relit, picture = _mixer().relight(f"{45 * k},3500")
  np.testing.assert_array_equal(relit, _label_value(3500, k))
  np.testing.assert_allclose(picture, envmap.envmap_rgb(3500, k) / 255.0, atol=1e-6)


def _linear(value):
  return float(guided_upsample.srgb_to_linear(np.float32(value)))


def test_an_intermediate_light_mixes_its_labels_in_linear_light():
  relit, _ = _mixer().relight("22.5,3500,x1.5")
  expected = 1.5 * 0.5 * (_linear(_label_value(3500, 0)) + _linear(_label_value(3500, 1)))
  np.testing.assert_allclose(relit, guided_upsample.linear_to_srgb(expected), atol=1e-6)


def test_several_lights_add_and_each_label_runs_once():
  calls = []
  mixer = _mixer(calls=calls)
  relit, _ = mixer.relight("90,3500;270,6500")
  expected = _linear(_label_value(3500, 2)) + _linear(_label_value(6500, 6))
  np.testing.assert_allclose(relit, guided_upsample.linear_to_srgb(expected), atol=1e-6)
  mixer.relight("90,3500")
  assert sorted(calls) == [(3500, 2), (6500, 6)]


def test_left_out_fields_come_from_the_models_estimate_of_the_input():
  # Estimate: 100 deg, 4000 K; a reference-image model mixes 3500 and 4500 K.
  assert set(_mixer().weights("W")) == {(3500.0, 6), (4500.0, 6)}
  assert set(_mixer().weights("4500K")) == {(4500.0, 2), (4500.0, 3)}
  # An envmap model takes the estimate's (or a shifted) temperature itself.
  envmap_model = _mixer(any_temperature=True)
  assert envmap_model.weights("+800K") == pytest.approx({(4800.0, 2): 7 / 9,
                                                         (4800.0, 3): 2 / 9})


def test_a_form_the_model_cannot_make_is_refused_naming_it():
  with pytest.raises(light_mix.LightMixError, match="'-2000K'.* about 4000 K .* 2000 K is "
                     "outside"):
    _mixer().relight("-2000K")
  with pytest.raises(light_mix.LightMixError, match="'W' keeps part of the input's own"):
    _mixer(estimate=None).relight("W")
  no_lights = trained_model.InferenceModel(relight_fn=None, image_size=SIZE, size_multiple=0,
                                           description="an exported file")
  with pytest.raises(relight.RelightError, match="'200,4200': an exported file cannot "
                     "relight by a light"):
    relight.lighting_of(no_lights, "200,4200")


def test_relight_takes_any_light_and_a_label_as_before():
  relighter = _fake_relighter()
  image = np.full((24, 40, 3), 0.5, np.float32)
  by_label = relight.relight_detailed(relighter, image, light="E,3500", form="direct")
  np.testing.assert_array_equal(by_label.relit_low, _label_value(3500, 2))
  assert by_label.relit.shape == (24, 40, 3)
  by_label_object = relight.relight_detailed(relighter, image,
                                             light=relight.LightLabel(3500, 2), form="direct")
  np.testing.assert_array_equal(by_label_object.relit, by_label.relit)
  mixed = relight.relight_detailed(relighter, image, light="67.5,3500", form="direct")
  assert _label_value(3500, 1) < mixed.relit_low.mean() < _label_value(3500, 2)


def test_sweep_lights_orbit_or_run_through_the_temperatures():
  orbit = sweep.lightings("azimuth", 8, "3500K,x1.5")
  assert [lighting.text for lighting, _ in orbit][:3] == ["0,3500,x1.5", "45,3500,x1.5",
                                                          "90,3500,x1.5"]
  assert orbit[1][1] == "45 deg"
  kelvin = sweep.lightings("kelvin", 5, "W")
  assert [lighting.text for lighting, _ in kelvin] == [
      "W,2500", "W,3500", "W,4500", "W,5500", "W,6500"]
  assert kelvin[-1][1] == "6500 K"
  with pytest.raises(ValueError, match="sweep 'hue': expected one of azimuth, kelvin"):
    sweep.lightings("hue", 8)
  with pytest.raises(ValueError, match="frames=1: expected 2 to 360"):
    sweep.lightings("kelvin", 1)


def test_sweep_frames_are_captioned_and_at_most_the_frame_size():
  relighter = _fake_relighter()
  image = np.full((300, 600, 3), 0.5, np.float32)
  frames = sweep.sweep_frames(relighter, image, np.full((SIZE, SIZE, 3), 0.5, np.float32),
                              "azimuth", 4, "3500K", side=128)
  assert len(frames) == 4 and frames[0].shape == (64, 128, 3)
  assert frames[0].dtype == np.uint8
  # The caption's dark box sits in the bottom-left corner; the top-right is the image.
  assert frames[0][-2, 2].mean() < frames[0][2, -2].mean()


def _frames(count=5, height=20, width=30):
  return [np.full((height, width, 3), 40 * index, np.uint8) for index in range(count)]


def test_a_gif_holds_every_frame_and_loops(tmp_path):
  path = tmp_path / "sweep.gif"
  animation.write_animation(path, _frames(), fps=10)
  with Image.open(path) as gif:
    assert gif.n_frames == 5 and gif.size == (30, 20)
    assert gif.info["duration"] == 100 and gif.info["loop"] == 0
    gif.seek(3)
    assert np.asarray(gif.convert("RGB"))[0, 0].tolist() == [120, 120, 120]
  assert [p.name for p in tmp_path.iterdir()] == ["sweep.gif"]  # no temporary left


def test_a_strip_puts_the_frames_in_rows(tmp_path):
  strip = animation.frame_strip(_frames(5))
  assert strip.shape == (2 * 20, 3 * 30, 3)
  assert strip[20, 30].tolist() == [160, 160, 160]  # the fifth frame, row 2 column 2
  animation.write_animation(tmp_path / "sweep.png", _frames(5))
  assert Image.open(tmp_path / "sweep.png").size == (90, 40)


def test_animation_formats_are_refused_in_one_line(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match=r"sweep.avi: an animation is written as .gif, .mp4"):
    animation.write_animation(tmp_path / "sweep.avi", _frames())
  monkeypatch.setattr(animation, "mp4_available", lambda: False)
  with pytest.raises(ValueError, match="MP4 needs imageio-ffmpeg .* write a .gif"):
    animation.check_animation_path(tmp_path / "sweep.mp4")
  with pytest.raises(ValueError, match="frames of one size"):
    animation.write_animation(tmp_path / "sweep.gif", _frames() + _frames(1, 10, 10))


@pytest.mark.skipif(not animation.mp4_available(), reason="imageio-ffmpeg is not installed")
def test_an_mp4_is_written_where_its_writer_is_installed(tmp_path):
  animation.write_animation(tmp_path / "sweep.mp4", _frames(6, 21, 31))
  assert (tmp_path / "sweep.mp4").read_bytes()[4:8] == b"ftyp"


def test_the_ratio_form_applies_the_change_of_light_and_by_direction_keeps_colour():
  rng = np.random.default_rng(5)
  input_low, relit_low, own_low = (rng.uniform(0.05, 0.95, (8, 8, 3)).astype(np.float32)
                                   for _ in range(3))
  np.testing.assert_allclose(guided_upsample.ratio_relit(input_low, own_low, own_low),
                             input_low, atol=1e-5)
  linear = lambda image: guided_upsample.srgb_to_linear(image) + 0.01
  relit = guided_upsample.ratio_relit(input_low, relit_low, own_low)
  change = linear(relit_low) / linear(own_low)
  np.testing.assert_allclose(linear(np.clip(relit, 0, 1)),
                             np.clip(linear(input_low) * change, 0.01, 1.01), rtol=1e-3)
  # By direction alone: one change for the three channels, so each pixel keeps its colour.
  kept = linear(guided_upsample.ratio_relit(input_low, relit_low, own_low, keep_colour=True))
  unclipped = ((kept > 0.0101) & (kept < 1.0)).all(axis=-1)
  assert unclipped.sum() > 20
  chroma = lambda image: image / image.sum(axis=-1, keepdims=True)
  np.testing.assert_allclose(chroma(kept)[unclipped], chroma(linear(input_low))[unclipped],
                             rtol=1e-3)


def test_the_picture_of_a_light_puts_a_light_from_the_right_on_the_right():
  # Whatever layout the model learned (the bundled model's is "v1": N at the left edge).
  relighter = dataclasses.replace(_fake_relighter(), envmap_convention="v1")
  mixer = light_mix.LightMixer(relighter, np.full((SIZE, SIZE, 3), 0.5, np.float32))
  for light, side in (("E,3500", slice(17, 32)), ("W,3500", slice(0, 16))):
    picture = mixer.relight(light)[1]
    column = int(np.argmax(picture.sum(axis=(0, 2))))
    assert column in range(32)[side], (light, column)
