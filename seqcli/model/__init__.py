"""The encoder-decoder model, one module per concept."""
