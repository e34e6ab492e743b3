"""Freeze, fold and unroll trained STL-SNNs into a model repository (``python -m export``).

Import-light on purpose: the service imports ``export.manifest`` without PyTorch installed.
"""
