"""The table of ``benchmarks/run.py``: one row per measurement, the
reference beside ours, their ratio and the target it is held to."""
from .tables import markdown_table

#: The cells of a GPU-only row in a CPU run.
NOT_MEASURED = 'not measured (no GPU)'


def _fmt(x, nd=2):
    """A cell: '-' for None, text as it is, else ``nd`` decimals (3
    significant digits below 0.01, none from 1000)."""
    if x is None:
        return '-'
    if isinstance(x, str):
        return x
    if x != 0 and (abs(x) >= 1000 or abs(x) < 0.01):
        return f'{x:.3g}' if abs(x) < 1000 else f'{x:.0f}'
    return f'{x:.{nd}f}'


def training_memory_mb(row):
    """Peak RSS above the runtime (interpreter and libraries, read before
    the model was built) of a memory worker's row: the model, gradients,
    optimizer state, data and activations -- what a GPU's
    ``max_memory_allocated`` counts. None for rows recorded before the
    runtime's RSS was."""
    if row.get('rss_runtime_mb') is None:
        return None
    return row['peak_rss_mb'] - row['rss_runtime_mb']


def _memory_mode_rows(results, add):
    """The memory mode (``with_cp``): peak memory and step time of ours
    with it against the reference."""
    mem, gpu = results['memory'], results['device'] == 'cuda'
    for i, b in enumerate(results['batches']):
        ref, our = mem['reference'][i], mem['ours_cp'][i]
        add(f'memory mode (with_cp): peak CPU RSS, batch {b} (MB, whole '
            'process)', ref['peak_rss_mb'], our['peak_rss_mb'],
            our['peak_rss_mb'] / ref['peak_rss_mb'], 'info', None)
        ref_mb, our_mb = training_memory_mb(ref), training_memory_mb(our)
        name = (f'memory mode (with_cp): peak CPU memory of training, batch '
                f'{b} (MB, peak RSS above the runtime)')
        if ref_mb is None or our_mb is None:
            add(name, 'not recorded', 'not recorded', None, '<= 0.6', None)
        else:
            add(name, ref_mb, our_mb, our_mb / ref_mb, '<= 0.6',
                our_mb / ref_mb <= 0.6)
        if gpu:
            add(f'memory mode (with_cp): peak GPU memory allocated, batch '
                f'{b} (MB)', ref['peak_gpu_alloc_mb'],
                our['peak_gpu_alloc_mb'],
                our['peak_gpu_alloc_mb'] / ref['peak_gpu_alloc_mb'],
                '<= 0.6',
                our['peak_gpu_alloc_mb'] / ref['peak_gpu_alloc_mb'] <= 0.6)
    b = results['batches'][0]
    r = results['train_step'][b]
    ref, our = r['reference']['median_s'], r['ours_cp']['median_s']
    add(f'memory mode (with_cp): training step, batch {b} (s, median of '
        f'{len(r["ours_cp"]["all_s"])}, {results["device_name"]})', ref, our,
        our / ref, '<= 1.35', our / ref <= 1.35)


def table_rows(results):
    """(measurement, reference, ours, ratio, target, met) per row."""
    rows = []
    gpu = results['device'] == 'cuda'

    def add(name, ref, our, ratio, target, ok):
        met = '-' if ok is None else ('yes' if ok else 'NO')
        rows.append((name, _fmt(ref), _fmt(our), _fmt(ratio, 3), target,
                     met))

    fl = results['first_step_loss']
    add('first-step loss, same weights and input (check)', fl['reference'],
        fl['ours'], fl['ours'] / fl['reference'], '= 1', abs(
            fl['ours'] / fl['reference'] - 1) < 1e-3)
    dev = results['device_name']
    for b, r in results['train_step'].items():
        ref, our = r['reference']['median_s'], r['ours']['median_s']
        add(f'training step, batch {b} (s, median of '
            f'{len(r["ours"]["all_s"])}, {dev})', ref, our, our / ref,
            '<= 0.85', our / ref <= 0.85)
    mem = results['memory']
    for i, b in enumerate(results['batches']):
        ref, our = mem['reference'][i], mem['ours'][i]
        add(f'peak CPU RSS, batch {b} (MB, whole process)',
            ref['peak_rss_mb'], our['peak_rss_mb'],
            # the network's activations dominate (the breakdown rows): the
            # memory target is the memory mode's (with_cp) below
            our['peak_rss_mb'] / ref['peak_rss_mb'], 'info', None)
    for i, b in enumerate(results['batches']):
        ref, our = mem['reference'][i], mem['ours'][i]
        if gpu:
            add(f'peak GPU memory allocated, batch {b} (MB)',
                ref['peak_gpu_alloc_mb'], our['peak_gpu_alloc_mb'],
                our['peak_gpu_alloc_mb'] / ref['peak_gpu_alloc_mb'],
                'info', None)
        else:
            add(f'peak GPU memory allocated, batch {b} (MB)', NOT_MEASURED,
                NOT_MEASURED, None, 'info', None)
    _memory_mode_rows(results, add)
    b0 = results['batches'][0]
    ref, our = mem['reference'][0], mem['ours'][0]
    ref_base, our_base = ref['rss_before_mb'], our['rss_before_mb']
    add(f'  RSS before the first step (runtime + model), batch {b0} (MB)',
        ref_base, our_base, our_base / ref_base, 'info', None)
    add(f'  saved for backward by the network, batch {b0} (MB)',
        ref['saved_network_mb'], our['saved_network_mb'],
        our['saved_network_mb'] / ref['saved_network_mb'], 'info', None)
    add(f'  saved for backward by the loss path, batch {b0} (MB)',
        ref['saved_loss_mb'], our['saved_loss_mb'],
        our['saved_loss_mb'] / max(ref['saved_loss_mb'], 1e-9), 'info',
        None)
    for kind in ('as_is', 'flat'):
        r = results['inference'][kind]
        ref, our = r['reference']['median_s'], r['ours']['median_s']
        label = (f'{100 * r["kept_fraction"]:.2g} % of pixels above 5 % of '
                 'the peak')
        if kind == 'flat':
            label = 'flattened maps (worst case), ' + label
        target = '<= 1.1' if kind == 'as_is' else 'info'
        add(f'inference, batch 1 ({label}): bare forward vs ours with '
            f'softmax + decode + ERE (s, median of '
            f'{len(r["ours"]["all_s"])})', ref, our, our / ref, target,
            our / ref <= 1.1 if kind == 'as_is' else None)
    e = results['ere']
    loop = e['loop_total_s_extrapolated']
    variants = [(e['threads'], e['ours_total_s'])]
    if e.get('ours_1thread_total_s') is not None:
        variants.append((1, e['ours_1thread_total_s']))
    for th, ours_s in variants:
        add(f'ERE of {e["maps"]} maps (s): Python loop (1 thread, '
            f'extrapolated from {e["loop_maps_timed"]} map(s)) vs ours '
            f'({th} torch thread{"s" if th > 1 else ""})', loop, ours_s,
            ours_s / loop, '<= 0.01 (>= 100x faster)', ours_s / loop <= 0.01)
    ld = results['loader']
    best = ld['by_workers'][ld['best_workers']]['images_per_s']
    batches = list(results['train_step'])
    b_last = batches[-1]
    step = results['train_step'][b_last]['ours']['median_s']
    consume = b_last / step
    add(f'data pipeline (img/s, {ld["best_workers"]} workers, best of '
        f'{sorted(ld["by_workers"])}) vs images/s our training step '
        f'consumes (batch {b_last}, {dev})', consume, best, best / consume,
        '>= 1 (keeps up)', best >= consume)
    if gpu and 'epoch_gpu' in results:
        for key in ('fp32', 'amp'):
            r = results['epoch_gpu'][key]
            add(f'ISBI-scale epoch ({r["images"]} images, batch '
                f'{r["batch"]}), AMP {"on" if key == "amp" else "off"}: '
                's / peak GPU MB', r['epoch_s'], r['peak_gpu_alloc_mb'],
                None, 'info', None)
    else:
        for key in ('off', 'on'):
            add(f'ISBI-scale epoch (150 images, batch 4), AMP {key}',
                NOT_MEASURED, NOT_MEASURED, None, 'info', None)
    return rows


def format_table(results):
    """The Markdown table of a run's ``results`` (docs/benchmarks.md holds
    it for the recorded runs); with mixed-precision rows (``--amp-only``
    runs hold only those) their paired table after it."""
    from .amp_table import format_amp_table
    head = ('measurement', 'reference', 'ours', 'ours / reference',
            'target', 'met')
    tables = []
    if 'train_step' in results:
        tables.append(markdown_table(head, table_rows(results)))
    if 'amp' in results:
        tables.append(format_amp_table(results))
    return '\n\n'.join(tables)
