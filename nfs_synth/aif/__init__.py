"""All-in-focus reconstruction from a defocused frame and a neuromorphic focal stack."""
