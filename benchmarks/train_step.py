"""Time per training step and peak memory of configs/ceph/unet_r34_onehot.py.

Runs the real model (ResNet-34 U-Net + SoftmaxHeatmapHead + SoftmaxNLLLoss)
through MMEngine's optimizer wrapper on random 640x800 inputs with sparse
targets, one subprocess per batch size so that each peak is its own.
Reports the median step time over repeated steps after warm-up, peak CPU RSS
and, on a GPU, peak allocated GPU memory.

Usage:
    python benchmarks/train_step.py [--batch-sizes 1 2 4] [--steps 5]
        [--device cpu|cuda] [--amp]
"""
import argparse
import json
import os.path as osp
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')


def measure(batch_size, steps, warmup, device, amp):
    """One batch size, in this process; returns a result dict."""
    sys.path.insert(0, REPO)
    import resource

    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample

    import mmchh  # noqa: F401
    init_default_scope('mmpose')
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = None
    w, h = cfg.model.head.decoder.input_size
    k = cfg.model.head.out_channels
    model = MODELS.build(cfg.model).to(device).train()
    optim_cfg = dict(cfg.optim_wrapper)
    if amp:
        # what tools/train.py --amp selects: fp16 on CUDA, bf16 on a CPU
        optim_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic') \
            if device == 'cuda' else optim_cfg.update(
                type='CpuAmpOptimWrapper')
    wrapper = build_optim_wrapper(model, optim_cfg)
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch_size, 3, h, w, generator=gen).to(device)
    samples = []
    for _ in range(batch_size):
        s = PoseDataSample()
        s.gt_instance_labels = InstanceData(
            heatmap_indices=torch.randint(0, h * w, (1, k), generator=gen),
            keypoint_weights=torch.ones(1, k))
        samples.append(s)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        if device == 'cuda':
            torch.cuda.synchronize()
        t = time.perf_counter()
        with wrapper.optim_context(model):
            losses = model(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)
        if device == 'cuda':
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    result = dict(
        batch_size=batch_size,
        device=device,
        amp=amp,
        steps=steps,
        step_s_median=statistics.median(times),
        step_s_min=min(times),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        torch_threads=torch.get_num_threads())
    if device == 'cuda':
        result['peak_gpu_alloc_mb'] = torch.cuda.max_memory_allocated() / 2**20
        result['gpu'] = torch.cuda.get_device_name()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch-sizes', type=int, nargs='+',
                        default=[1, 2, 4])
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--one', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--json', help='also write the rows to this file')
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.steps, args.warmup,
                                 args.device, args.amp)))
        return
    rows = []
    for b in args.batch_sizes:
        cmd = [sys.executable, __file__, '--one', str(b), '--steps',
               str(args.steps), '--warmup', str(args.warmup), '--device',
               args.device] + (['--amp'] if args.amp else [])
        print(f'train_step: batch {b} ...', file=sys.stderr, flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print('| batch | device | AMP | step (s, median) | peak RSS (MB) | '
          'peak GPU alloc (MB) |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["batch_size"]} | {r.get("gpu", r["device"])} | '
              f'{"on" if r["amp"] else "off"} | {r["step_s_median"]:.2f} | '
              f'{r["peak_rss_mb"]:.0f} | '
              f'{r.get("peak_gpu_alloc_mb", float("nan")):.0f} |')
    if args.json:
        # strict JSON: a row not measured is null, never a bare NaN
        from mmchh.utils.io import write_json
        write_json(args.json, rows)


if __name__ == '__main__':
    main()
