"""benchmarks/harness/timing.py: sides alternated step by step and the
median of per-pair ratios with its range."""
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))

from harness.timing import interleaved, paired_ratio  # noqa: E402


def test_paired_ratio_hand_computed():
    times = dict(a=[2.0, 3.0, 10.0, 4.0], b=[1.0, 2.0, 4.0, 4.0])
    r = paired_ratio(times, 'a', 'b')
    # ratios 2, 1.5, 2.5, 1: median of the four (1.5 + 2) / 2
    assert r['all'] == [2.0, 1.5, 2.5, 1.0]
    assert r['median'] == 1.75 and (r['min'], r['max']) == (1.0, 2.5)
    assert r['pairs'] == 4
    # a slow spell that hits both sides of a pair cancels in its ratio,
    # not in the ratio of the medians
    load = dict(a=[1.0, 1.0, 5.0], b=[2.0, 2.0, 10.0])
    assert paired_ratio(load, 'a', 'b')['median'] == 0.5
    with pytest.raises(ValueError, match='no repetitions'):
        paired_ratio(dict(a=[], b=[]), 'a', 'b')


def test_paired_ratio_random_against_slow_reference():
    import random
    rng = random.Random(0)
    for n in (1, 2, 7, 8):
        times = dict(x=[rng.uniform(0.1, 2) for _ in range(n)],
                     y=[rng.uniform(0.1, 2) for _ in range(n)])
        ratios = sorted(times['x'][i] / times['y'][i] for i in range(n))
        mid = (ratios[(n - 1) // 2] + ratios[n // 2]) / 2
        r = paired_ratio(times, 'x', 'y')
        assert r['median'] == pytest.approx(mid, rel=1e-12)
        assert (r['min'], r['max']) == (ratios[0], ratios[-1])


def test_interleaved_alternates_sides_step_by_step():
    order = []
    fns = {k: (lambda k=k: order.append(k)) for k in 'ABC'}
    times = interleaved(fns, reps=3, warmup=1, device='cpu')
    assert ''.join(order) == 'ABC' 'CBA' 'ABC' 'CBA'
    assert {k: len(v) for k, v in times.items()} == dict(A=3, B=3, C=3)
