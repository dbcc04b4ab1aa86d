"""One module per mode: train, inference, iotest, summary."""
