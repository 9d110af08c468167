"""Mitsuba 3 renderer of the synthetic VIDIT-like dataset (see synthetic.py for the API).

Modules: `synthetic` (dataset sizes, splits, render_scene / render_split), `locations`
(procedural locations and views, plain data), `textures` (procedural albedo maps and
scikit-image's photographs), `illumination` (main light colour and position),
`mitsuba_scene` (Mitsuba scenes, renders and depth / normal maps). The v2 content:
`meshes` (numpy triangle meshes), `locations_v2` (rooms, open scenes, held-out content),
`mitsuba_v2` (their renders, albedo and shading maps); `noise` measures render noise.
"""
