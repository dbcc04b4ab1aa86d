"""Reference implementations, one package per framework and convolution mode."""
