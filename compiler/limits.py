"""Documented limits. Specs that exceed one fail at once with a SpecLimitError.

They keep a typo (``repeat 1000000000``, ``linear(x, 1e12)``) from hanging the
compiler or exhausting memory; each can be raised by editing this module.
"""

#: largest count a `repeat` may take (the whole domain of a chosen count included)
MAX_REPEAT = 10_000
#: most ops in one candidate graph
MAX_NODES = 100_000
#: largest size of any one tensor dimension
MAX_DIM = 2**31 - 1
#: most evaluation steps one space analysis may take, over all its passes
MAX_ANALYSIS_STEPS = 5_000_000
#: most passes a space analysis may make; it makes one more pass per value of each
#: decision that steers control flow (a chosen count used twice, an `if` on a choice)
MAX_ANALYSIS_PASSES = 20_000
#: largest integer an arithmetic expression may produce (bits)
MAX_INT_BITS = 256
