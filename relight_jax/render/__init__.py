"""Mitsuba 3 renderer of the synthetic VIDIT-like dataset (see synthetic.py for the API).

Modules: `synthetic` (dataset sizes, splits, render_scene / render_split), `locations`
(procedural locations and views, plain data), `textures` (procedural albedo maps),
`illumination` (main light colour and position), `mitsuba_scene` (Mitsuba scenes, renders
and depth / normal maps).
"""
