"""Compiler: elaboration, search space and graph IR."""
