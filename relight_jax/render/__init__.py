"""Mitsuba 3 renderer of the synthetic VIDIT-like dataset (see synthetic.py for the API).

Modules: `synthetic` (dataset sizes, splits, render_scene / render_split, the same for
every generator), `generators` (the `Generator` interface and the `GENERATORS` table:
how each generation draws and renders a scene, what it stores, its version). The v1
generator: `locations` (procedural locations and views, plain data), `mitsuba_scene`
(Mitsuba scenes, renders and depth / normal maps). The v2 generator: `meshes` (numpy
triangle meshes), `locations_v2` (rooms, open scenes, held-out content), `mitsuba_v2`
(their renders, albedo and shading maps). Shared: `textures` (procedural albedo maps and
scikit-image's photographs), `illumination` (main light colour and position), and the
public pieces of `locations` and `mitsuba_scene` that v2 builds on; `noise` measures
render noise.
"""
