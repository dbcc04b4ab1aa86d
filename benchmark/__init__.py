"""The framework-agnostic CosmicTagger benchmark harness."""
