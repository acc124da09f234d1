"""On a GPU: one epoch at ISBI scale with AMP off and on."""
import time

from .data_pipeline import make_loader
from .timing import log


def bench_epoch_gpu(s, quick, results, cfg, dataset):
    """150 images of 640 x 800, batch 4, the real pipeline and runner step,
    AMP off and on: seconds per epoch and peak allocated GPU memory."""
    import torch

    import ours
    workers = results['loader']['best_workers']
    rows = {}
    for amp in (False, True):
        log(f'ISBI-scale epoch on the GPU, AMP {"on" if amp else "off"} ...')
        torch.manual_seed(0)
        model, wrapper = ours.build_ours(cfg, 'cuda', amp=amp)
        # warm-up (cuDNN algorithm choice, allocator) on one batch
        loader = make_loader(dataset, s['epoch_batch'], s['epoch_batch'], 0)
        for data in loader:
            model.train_step(data, wrapper)
        loader = make_loader(dataset, s['epoch_images'], s['epoch_batch'],
                             workers, shuffle_seed=1)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for data in loader:
            model.train_step(data, wrapper)
        torch.cuda.synchronize()
        rows['amp' if amp else 'fp32'] = dict(
            epoch_s=time.perf_counter() - t,
            peak_gpu_alloc_mb=torch.cuda.max_memory_allocated() / 2**20,
            images=s['epoch_images'], batch=s['epoch_batch'],
            workers=workers)
        del model, wrapper
        torch.cuda.empty_cache()
        log(f'  {rows["amp" if amp else "fp32"]["epoch_s"]:.1f} s')
    results['epoch_gpu'] = rows
