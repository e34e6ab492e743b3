"""Batch-size buckets for captured CUDA graphs: a batch runs in the smallest bucket that holds it.

A CUDA graph replays fixed shapes, so one graph is captured per bucket (powers of two up to the
largest batch, plus the largest itself, as TensorRT optimisation profiles and Triton's graph
batch sizes do) and a batch is padded up to its bucket; only its own rows come back.
"""

from __future__ import annotations


def buckets_up_to(max_batch_size: int) -> tuple[int, ...]:
    """``1, 2, 4, ...`` below ``max_batch_size``, then ``max_batch_size``."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    sizes = []
    size = 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return (*sizes, max_batch_size)


def bucket_for(size: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds ``size`` rows; ``buckets`` ascending."""
    for bucket in buckets:
        if bucket >= size:
            return bucket
    raise ValueError(f"batch of {size} exceeds the largest bucket ({buckets[-1]})")
