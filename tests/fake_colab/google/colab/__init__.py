"""Stands for Colab's `google.colab` in tests/test_notebooks.py: the notebooks' Colab-only
cells run on a CPU with uploads, downloads and Drive backed by folders named in the
environment (FAKE_COLAB_UPLOADS, FAKE_COLAB_DOWNLOADS)."""
