"""Documented limits. Specs that exceed one fail at once with a SpecLimitError.

They keep a typo (``repeat 1000000000``, ``linear(x, 1e12)``) from hanging the
compiler or exhausting memory; each can be raised by editing this module.
"""

#: largest count a `repeat` may take (the whole domain of a chosen count included)
MAX_REPEAT = 10_000
#: most iterations of a loop nest: the product of a repeat's count and the counts
#: of the repeats around it (for a chosen count, its largest value)
MAX_NESTED_ITERATIONS = 100_000
#: deepest evaluation: expressions within expressions, counted through the bodies of
#: the defs they call and the blocks (`repeat`, `with`) around them
MAX_EVAL_DEPTH = 100
#: most ops in one candidate graph; a spec whose every candidate would have more
#: fails when it is loaded
MAX_NODES = 100_000
#: most values of a `float(low, high, step = s)` range (sampling and grid search list them)
MAX_STEPPED_VALUES = 100_000
#: largest size of any one tensor dimension
MAX_DIM = 2**31 - 1
#: most evaluation steps one space analysis may take, over all its passes (statements,
#: op applications, def calls, decisions and repeat iterations). A step takes two to
#: six microseconds, so this stops a runaway analysis within about two seconds; it
#: leaves room to analyse candidates of MAX_NODES ops with their alternatives
MAX_ANALYSIS_STEPS = 300_000
#: most passes a space analysis may make; it makes one more pass per value of each
#: decision that steers control flow (a chosen count used twice, an `if` on a choice)
MAX_ANALYSIS_PASSES = 20_000
#: largest integer a number literal or an arithmetic expression may produce (bits)
MAX_INT_BITS = 256
#: most parameters of a candidate built into a torch module (`autoarch compile`,
#: `autoarch.load_model`): 2e9 float32 weights are 8 GB. The IR of a larger candidate
#: is fine (its costs are formulas); building its module is refused before any
#: memory is allocated
MAX_PARAMS = 2_000_000_000

# settings of the `train` and `search` blocks (and their command-line flags), so that
# a typo such as ``trials = 10**30`` fails at once instead of overflowing SQLite
#: most trials of a search
MAX_TRIALS = 1_000_000
#: candidates a one-shot search scores on its supernet (`evaluate`)
MAX_EVALUATE = 1_000_000
#: most epochs of a trial
MAX_EPOCHS = 100_000
#: most trials at once (`workers`)
MAX_WORKERS = 1024
#: largest seed of training or of the search (numpy's generators take 32 bits)
MAX_SEED = 2**32 - 1
#: largest batch
MAX_BATCH = 2**31 - 1
#: longest `timeout`, in seconds (about 31 years)
MAX_TIMEOUT = 10**9
