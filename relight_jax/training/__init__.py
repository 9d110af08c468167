"""Training: the loop and what it is made of.

`train` (the loop: resume, preemption, periodic evaluation), `step` (the pure jitted
train / eval steps), `state` (the train state and optimiser), `objectives` and `losses`
(each model's loss terms, report §3.4), `checkpointing` (orbax checkpoints, manifests,
config.json), `parallel` (the device mesh), `workdir` (its lock), `summaries`
(TensorBoard events: clu's writers where TensorFlow is installed, else TensorFlow-free).
"""
