"""`google.colab.output`: jax's Colab debugger imports it when google.colab is present;
nothing in the notebooks calls it."""
