"""PyTorch implementation of the CosmicTagger UResNet and its training step."""
