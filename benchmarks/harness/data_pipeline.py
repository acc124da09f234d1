"""Throughput of the config's training pipeline (the paper's augmentation)
on synthetic ISBI-layout images at the benchmark's size."""
import os.path as osp
import time

from .timing import log


def make_dataset(s, quick, workdir):
    """Synthetic ISBI-layout images at the benchmark size, converted as for
    training, and the config's training dataset (its real pipeline) on
    them."""
    from mmchh.datasets.converters import convert_isbi
    from mmchh.datasets.synthetic import make_synthetic_ceph
    from mmpose.registry import DATASETS

    import ours
    raw, coco = osp.join(workdir, 'raw'), osp.join(workdir, 'coco')
    n = s['loader_source_images']
    info = make_synthetic_ceph(raw, num_train=n + 2, num_test1=1,
                               num_test2=1, image_size=tuple(s['size']),
                               progress=False)
    convert_isbi(raw, coco, num_val=1, num_calib=1,
                 spacing=info['spacing_mm'], progress=False)
    cfg = ours.load_config(s['size'])
    ds_cfg = dict(cfg.train_dataloader.dataset)
    ds_cfg.update(data_root=coco + '/', ann_file='train.json')
    return cfg, DATASETS.build(ds_cfg)


def make_loader(dataset, num, batch, workers, shuffle_seed=0):
    """A DataLoader over ``num`` samples (the dataset cycled), batch as in
    the config, collated as MMEngine does."""
    import torch
    from mmengine.dataset import pseudo_collate
    g = torch.Generator().manual_seed(shuffle_seed)
    order = [int(i) % len(dataset)
             for i in torch.randperm(max(num, len(dataset)), generator=g)]
    order = (order * (num // len(order) + 1))[:num]
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=order, num_workers=workers,
        collate_fn=pseudo_collate, persistent_workers=False,
        multiprocessing_context='fork' if workers else None)


def bench_loader(s, quick, results, workdir):
    """Images/s of the training pipeline with each worker count of ``s``
    (``results['loader']``).

    Returns:
        tuple: (cfg, dataset) -- the config and its training dataset on
        the synthetic images, for the GPU epoch.
    """
    import cv2
    cv2.setNumThreads(0)  # as MMEngine's runner (env_cfg.mp_cfg)
    cfg, dataset = make_dataset(s, quick, workdir)
    batch = cfg.train_dataloader.batch_size
    rows = {}
    for workers in s['loader_workers']:
        log(f'data pipeline: {s["loader_images"]} images, batch {batch}, '
            f'{workers} worker(s) ...')
        loader = make_loader(dataset, s['loader_images'], batch, workers)
        it = iter(loader)
        first = next(it)  # worker start-up excluded
        t = time.perf_counter()
        count = 0
        for data in it:
            count += len(data['inputs'])
        dt = time.perf_counter() - t
        rows[workers] = dict(images=count, seconds=dt,
                             images_per_s=count / dt if dt > 0 else 0.0)
        del it, loader, first
        log(f'  {rows[workers]["images_per_s"]:.1f} images/s')
    best = max(rows, key=lambda w: rows[w]['images_per_s'])
    results['loader'] = dict(batch=batch, by_workers=rows, best_workers=best)
    return cfg, dataset
