"""Data pipeline: fetch HR images, pack them into per-scale stores, load training pairs."""
