"""What a training triplet holds: illumination conventions, envmaps, the pipeline.

`lights` (the one numbering of the 40 lights and the azimuth convention), `envmap` (the
generated envmap ground truth, report §3.4) and `input_pipeline` (triplets (I, T, G)
composed by index from a dataset's scenes; pairing rules; the fixed Eval lists).
The datasets themselves are built by relight_jax/datasets (and render/).
"""
