"""Lowering of IR graphs to torch modules (see the lowering issue)."""
