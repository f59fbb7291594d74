"""Faster equivalents of the reference model's computations.

Each module here computes what a plain module of `seqcli.model` (or `seqcli.loss`) computes,
with the same outputs and gradients (tests/test_fast_paths.py checks each one), only faster on
some hardware. `seqcli.fast.dispatch` alone decides when one is used, from what the cells and
attention modules declare about themselves. The parts of the reference model (cells, attention,
encoder, decoder) and `seqcli.loss` never import this package; the assembled models do, to choose.
"""
