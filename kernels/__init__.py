"""Custom kernels with pure-torch references (see the kernels issue)."""
