"""thinc model architectures."""
