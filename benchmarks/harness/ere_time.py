"""ERE of many full-resolution maps (``expected_radial_error``) against the
obvious per-pixel Python loop, on maps shaped like a trained network's."""
import math
import statistics
import time

from .paired_models import NUM_KEYPOINTS
from .timing import log, time_call


def peaked_maps(num, size, seed):
    """(num, K, H, W) probability maps like a trained network's: an
    anisotropic, rotated bump per landmark (long along a contour, narrow
    across it) on a noisy background."""
    import torch

    from mmchh.codecs.utils import softmax_2d
    w, h = size
    g = torch.Generator().manual_seed(seed)
    n = num * NUM_KEYPOINTS
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32)[None, None, :]
    cx = (torch.rand(n, generator=g) * w)[:, None, None]
    cy = (torch.rand(n, generator=g) * h)[:, None, None]
    angle = (torch.rand(n, generator=g) * math.pi)[:, None, None]
    # about 5-13 px along and 2-4 px across at 640 x 800 (0.3 mm/px): ERE
    # of a few mm, as the paper reports on ISBI 2015
    along = (w / 128 + torch.rand(n, generator=g) * w / 80)[:, None, None]
    across = along / 3
    u = (xs - cx) * angle.cos() + (ys - cy) * angle.sin()
    v = (ys - cy) * angle.cos() - (xs - cx) * angle.sin()
    logits = -0.5 * ((u / along)**2 + (v / across)**2)
    logits = logits + 0.5 * torch.randn(n, h, w, generator=g)
    return softmax_2d(logits).view(num, NUM_KEYPOINTS, h, w)


def ere_python_loop(prob_map, threshold=0.05, sx=1.0, sy=1.0):
    """The ERE of one map, pixel by pixel in pure Python (the obvious
    implementation of the paper's definition)."""
    rows = prob_map.tolist()
    peak, mx, my = -1.0, 0, 0
    for y, row in enumerate(rows):
        for x, v in enumerate(row):
            if v > peak:
                peak, mx, my = v, x, y
    cut = threshold * peak
    mass = acc = 0.0
    for y, row in enumerate(rows):
        dy2 = ((y - my) * sy)**2
        for x, v in enumerate(row):
            if v >= cut and v > 0:
                mass += v
                acc += v * math.sqrt(((x - mx) * sx)**2 + dy2)
    return acc / mass if mass > 0 else 0.0


def bench_ere(s, device, results):
    """ERE of ``s['ere_images']`` images' maps (``results['ere']``), with
    torch's threads and with one, against the loop timed on
    ``s['loop_maps']`` maps and extrapolated; raises when the two
    disagree."""
    import torch

    from mmchh.codecs.utils import expected_radial_error
    n_img, n_loop = s['ere_images'], s['loop_maps']
    pixel = (0.3, 0.3)
    pool = [
        peaked_maps(1, s['size'], seed=i).to(device)
        for i in range(s['ere_pool'])
    ]
    log(f'ERE: {n_img} x {NUM_KEYPOINTS} maps of {s["size"][0]} x '
        f'{s["size"][1]} (a pool of {len(pool)} images cycled), against the '
        f'Python loop on {n_loop} map(s) ...')
    # Each image's ERE is timed with torch's default thread count and with
    # one thread (as the loop runs), alternately. On a CPU shared with other
    # jobs every multi-threaded kernel can wait a scheduler time slice for
    # its second thread, which dominates small kernels like these.
    threads = torch.get_num_threads()
    variants = [threads] + ([1] if device == 'cpu' and threads > 1 else [])
    ere_t = {v: [] for v in variants}
    loop_t, check = [], []
    per_round = math.ceil(n_img / n_loop)
    done = 0
    for r in range(n_loop):
        todo = min(per_round, n_img - done)
        for i in range(todo):
            maps = pool[(done + i) % len(pool)]
            for v in (variants if i % 2 == 0 else variants[::-1]):
                torch.set_num_threads(v)
                ere_t[v].append(time_call(
                    lambda: expected_radial_error(maps, pixel_size=pixel),
                    device))
            torch.set_num_threads(threads)
        done += todo
        k = r % NUM_KEYPOINTS
        m = pool[r % len(pool)][0, k].cpu()
        t = time.perf_counter()
        slow = ere_python_loop(m, sx=pixel[0], sy=pixel[1])
        loop_t.append(time.perf_counter() - t)
        fast = float(expected_radial_error(m, pixel_size=pixel))
        check.append(abs(fast - slow) / max(abs(slow), 1e-12))
    total_maps = n_img * NUM_KEYPOINTS
    res = dict(
        maps=total_maps,
        threads=threads,
        ours_total_s=sum(ere_t[threads]),
        ours_per_image_median_s=statistics.median(ere_t[threads]),
        ours_1thread_total_s=sum(ere_t[1]) if 1 in ere_t else None,
        loop_maps_timed=n_loop,
        loop_per_map_median_s=statistics.median(loop_t),
        loop_total_s_extrapolated=statistics.median(loop_t) * total_maps,
        max_rel_diff_loop_vs_ours=max(check))
    results['ere'] = res
    log(f'  ours {res["ours_total_s"]:.3f} s for {total_maps} maps '
        f'({res["ours_1thread_total_s"] or float("nan"):.3f} s with 1 '
        f'thread); loop '
        f'{res["loop_per_map_median_s"]:.3f} s per map -> '
        f'{res["loop_total_s_extrapolated"]:.0f} s')
    if res['max_rel_diff_loop_vs_ours'] > 1e-4:
        raise RuntimeError('ERE: the loop and expected_radial_error disagree '
                           f'({res["max_rel_diff_loop_vs_ours"]:.2g})')
    del pool
    torch.cuda.empty_cache() if device == 'cuda' else None
