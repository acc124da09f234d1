# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The synthetic generator's former import path, kept for the benchmark
harness: the generator is :mod:`mmchh.datasets.synthetic`."""
from mmchh.datasets.synthetic import make_synthetic_ceph, synthetic_ceph_sample

__all__ = ['make_synthetic_ceph', 'synthetic_ceph_sample']
