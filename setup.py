"""The package list, which pyproject.toml cannot state: the experiment configs live at the
top level (configs/, their source) and are installed as relight_jax.configs. Namespace
discovery lists the dataset's dummy_data/ folders too, whose files are package data.
Everything else is in pyproject.toml."""

import setuptools

setuptools.setup(
    packages=setuptools.find_namespace_packages(
        include=["relight_jax", "relight_jax.*"], exclude=["*.__pycache__"])
    + ["relight_jax.configs"],
    package_dir={"relight_jax.configs": "configs"},
)
