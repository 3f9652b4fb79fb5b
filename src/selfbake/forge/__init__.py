"""Forge: the recipe that trains selfbake's bundled model from scratch (a loop like the others)."""
