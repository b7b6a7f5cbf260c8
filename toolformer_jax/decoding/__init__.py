"""Decoding with the networks' KV cache (t5x's cache protocol)."""
