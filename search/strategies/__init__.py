"""Search strategies: one module per strategy, each with ``make_sampler``.

Every strategy is an Optuna sampler driving the one elaboration path
(``spec.build_with(OptunaDecider(trial))``)::

    make_sampler(spec, *, seed, n_objectives) -> optuna.samplers.BaseSampler
"""
