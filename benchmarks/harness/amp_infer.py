"""``tools/infer.py --amp`` against ``tools/infer.py`` over one folder of
X-rays: both through the tool's ``main()`` (model load included, as a
user runs it), alternated run by run, read as the median of the per-pair
speed-ups (fp32 seconds / --amp seconds = --amp images/s over fp32's)."""
from .folder_inference import Runs, infer_cli, rate, write_model
from .timing import interleaved, log, paired_ratio

#: --amp images/s over fp32's that the row is held to
TARGET = 2.0


def bench_amp_infer(s, device, workdir, folder, paths, results):
    """``results['amp_infer']``: images/s of each side, the paired
    speed-up with its range, and the CPU's native bf16 flags."""
    from mmchh.engine.amp import amp_summary, native_bf16_flags
    from mmchh.testing import load_tool
    n, batch = len(paths), s['batch']
    cfg_path, ckpt_path = write_model(workdir, s['size'])
    tool, runs = load_tool('infer'), Runs(workdir)
    fns = {
        name: (lambda a=amp: infer_cli(tool, folder, cfg_path, ckpt_path,
                                       runs.next(name), device, batch, a))
        for name, amp in (('fp32', False), ('amp', True))
    }
    log(f'--amp: {amp_summary(device)}; {n} images of {s["size"][0]} x '
        f'{s["size"][1]}, {s["amp_warmup"]} warm-up + {s["reps"]} '
        'alternated runs of tools/infer.py without and with --amp ...')
    times = interleaved(fns, s['reps'], s['amp_warmup'], device)
    speedup = paired_ratio(times, 'fp32', 'amp')
    results['amp_infer'] = dict(
        fp32=rate(n, times['fp32']), amp=rate(n, times['amp']),
        speedup=speedup, target=TARGET, met=speedup['median'] >= TARGET,
        summary=amp_summary(device),
        native_bf16=list(native_bf16_flags()) if device == 'cpu' else None)
    log(f'  --amp / fp32 images/s: median {speedup["median"]:.3f} '
        f'[{speedup["min"]:.3f}, {speedup["max"]:.3f}] over '
        f'{speedup["pairs"]} pairs')
