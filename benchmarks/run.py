"""mmchh against a bare-PyTorch reference of the paper's training step.

Every ratio is measured side by side in one run: the reference
(``benchmarks/reference.py``: smp U-Net-R34, dense one-hot targets, exp/sum
softmax, float64 NLL, no MMPose) and ours (``benchmarks/ours.py``: the paper's
config through MMPose's ``TopdownPoseEstimator``, our head, loss, sparse
targets and data preprocessor) get the same weights and the same input, and
their repetitions are interleaved (ABBA order) so that load from other
processes hits both alike. Timings are medians after warm-up.

Measured:
    * training step time, batch 1 and 2 (ours / reference, target <= 0.85);
    * peak memory: CPU RSS of a process per side (and peak allocated GPU
      memory on a GPU), for information (the network's own activations
      dominate), with the tensors each side saves for backward (network vs
      loss path) as the breakdown;
    * the memory mode (``with_cp=True``: activation checkpointing in the
      backbone and the decoder): peak memory of ours with it (own process;
      target <= 0.6 of the reference for the memory training takes -- the
      peak RSS above the runtime's, read before the model is built, the
      CPU counterpart of a GPU's allocated memory -- the whole process's
      peak for information) and its training step at batch 1 (interleaved
      with the two others, target <= 1.35);
    * inference incl. softmax, decode and ERE (our ``test_step``) against
      the bare forward (target <= 1.1);
    * ERE of 150 x 19 full-resolution maps against a per-pixel Python loop
      (timed on a few maps, extrapolated per map; target >= 100x faster);
    * data-pipeline throughput (the config's training pipeline with the
      paper's augmentation) against the images/s a training step consumes;
    * on a GPU only: one epoch at ISBI scale (150 images, batch 4) with AMP
      off and on: time and peak allocated memory;
    * mixed precision (``--amp``: bf16 autocast on a CPU, fp16 on CUDA) and
      channels_last, as paired rows: every side stepped in turn (A B C ..,
      then reversed), >= 7 pairs after warm-up, each row the median of the
      per-pair ratios with their range (``harness/amp_step.py``): the fp32
      step vs the reference (target <= 0.85), the --amp step vs the fp32
      reference (<= 0.45), --amp predict vs the fp32 bare forward (<= 0.45),
      the memory mode with --amp. Whether the CPU has native bf16
      (amx_bf16/avx512_bf16) is recorded and named in every row.

Usage:
    python benchmarks/run.py [--quick] [--json OUT] [--device cpu|cuda]
        [--amp-only] [--size W H] [--batches B ...]

``--quick`` uses tiny inputs and 1-2 repetitions (the smoke test in
tests/test_benchmarks runs it); progress goes to stderr, the table to stdout.
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
sys.path[:0] = [p for p in (HERE, REPO) if p not in sys.path]

# the harness imports torch, mmchh and the two sides only when a
# measurement runs: a memory worker measures its side's process alone
from harness.data_pipeline import bench_loader  # noqa: E402
from harness.epoch_gpu import bench_epoch_gpu  # noqa: E402
from harness.ere_time import bench_ere  # noqa: E402
from harness.machine import machine_info  # noqa: E402
from harness.peak_memory import (MEMORY_SIDES, bench_memory,  # noqa: E402
                                 worker_memory)
from harness.run_table import format_table, table_rows  # noqa: E402
from harness.tables import with_int_keys  # noqa: E402
from harness.timing import log  # noqa: E402
from harness.training_step import bench_train  # noqa: E402
from harness.amp_step import bench_amp  # noqa: E402

#: Each setting of a full run and of ``--quick`` (tiny inputs, 1-2
#: repetitions), side by side: name -> (full, quick).
SETTINGS = {
    'size': ((640, 800), (64, 96)),
    'batches': ((1, 2), (1, 2)),
    'train_reps': ({1: 4, 2: 3}, {1: 2, 2: 1}),
    'warmup': (1, 1),
    'mem_steps': (2, 1),
    'infer_reps': (5, 2),
    'infer_flat_reps': (3, 1),
    'ere_images': (150, 3),
    'ere_pool': (3, 1),
    'loop_maps': (3, 1),
    'loader_source_images': (16, 2),
    'loader_images': (48, 8),
    'loader_workers': ((0, 1, 2), (0, 2)),
    'epoch_images': (150, 8),
    'epoch_batch': (4, 4),
    # the paired mixed-precision rows (batch: the last of 'batches')
    'amp_reps': (7, 2),
    'amp_warmup': (1, 1),
}
FULL = {name: full for name, (full, _) in SETTINGS.items()}
QUICK = {name: quick for name, (_, quick) in SETTINGS.items()}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='tiny inputs, 1-2 repetitions (smoke test)')
    parser.add_argument('--json', help='also write all results here')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cuda when available, else cpu')
    parser.add_argument(
        '--worker-memory', choices=MEMORY_SIDES,
        help='only measure the peak memory of one side (ours_cp: ours with '
        'with_cp=True) in this process and print it as JSON')
    parser.add_argument('--size', type=int, nargs=2, metavar=('W', 'H'),
                        help='input size (divisible by 32; default 640 800, '
                        'with --quick 64 96)')
    parser.add_argument('--batches', type=int, nargs='+',
                        help='batch sizes (default 1 2)')
    parser.add_argument('--mem-steps', type=int,
                        help='training steps per batch size in the memory '
                        'worker (default 2, with --quick 1)')
    parser.add_argument('--amp-only', action='store_true',
                        help='only the paired mixed-precision rows')
    parser.add_argument('--table-from', metavar='JSON',
                        help='print the table of a run written with --json '
                        '(targets as this script states them) and exit')
    args = parser.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            print(format_table(with_int_keys(json.load(f))))
        return
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    s = dict(QUICK if args.quick else FULL)
    for key in ('size', 'batches', 'mem_steps'):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.worker_memory:
        print(json.dumps(worker_memory(args.worker_memory, s['batches'],
                                       s['size'], s['mem_steps'], device,
                                       args.quick)))
        return

    t0 = time.time()
    results = dict(mode='quick' if args.quick else 'full', device=device,
                   size=list(s['size']), batches=list(s['batches']),
                   machine=machine_info(device))
    results['device_name'] = results['machine'].get('gpu', 'CPU')
    log(f'{results["mode"]} run on {results["device_name"]} '
        f'({results["machine"]["cpu"]}, {results["machine"]["cores"]} '
        f'cores, torch {results["machine"]["torch"]}), input '
        f'{s["size"][0]} x {s["size"][1]}')
    s['amp_batch'] = s['batches'][-1]
    if not args.amp_only:
        bench_train(s, device, args.quick, results)
        bench_memory(s, device, args.quick, results, osp.abspath(__file__))
        bench_ere(s, device, results)
        with tempfile.TemporaryDirectory(prefix='mmchh_bench_') as tmp:
            cfg, dataset = bench_loader(s, args.quick, results, tmp)
            if device == 'cuda':
                bench_epoch_gpu(s, args.quick, results, cfg, dataset)
    bench_amp(s, device, results)
    results['command'] = 'python benchmarks/run.py ' + ' '.join(sys.argv[1:])
    results['wall_s'] = time.time() - t0
    if 'train_step' in results:
        results['table'] = [list(r) for r in table_rows(results)]
    table = format_table(results)
    log(f'done in {results["wall_s"]:.0f} s')
    print(table)
    if args.json:
        # strict JSON: a row not measured is null, never a bare NaN
        from mmchh.utils.io import write_json
        write_json(args.json, results)


if __name__ == '__main__':
    main()
