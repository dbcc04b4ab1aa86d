"""TensorFlow/Keras 3 twin of the torch CosmicTagger UResNet (same function, same weights)."""
