"""The ``stlsnn`` command line: one console script, a subcommand per job (``stlsnn --help``).

``serve``, ``export``, ``train`` and ``evaluate`` hand their arguments to the modules behind
``python -m service``, ``python -m export``, ``python -m models.train`` and ``python -m
models.evaluate``, imported only when that subcommand runs: the serve image has no PyTorch, and
``stlsnn --help`` must work there. ``classify`` and ``timeline`` talk to a running server through
``service.client``; ``inspect`` reads a file locally with ``events``.
"""
