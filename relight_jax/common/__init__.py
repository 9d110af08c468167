"""Leaves that import nothing else of relight_jax: atomic file writes (`atomic`), image
files (`image_io`), log set-up (`logs`) and host-memory checks (`host_memory`)."""
