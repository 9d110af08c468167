"""Configs: every key declared once (`defaults`) and config strings / files (`config_utils`).

The experiment configs themselves are the files of configs/ (installed as
relight_jax.configs).
"""
