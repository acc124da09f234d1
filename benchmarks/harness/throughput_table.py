"""The table of ``benchmarks/infer_throughput.py``: images/s of ours beside
the bare loop's, and their ratio."""
from .tables import markdown_table


def _fmt(x, nd=3):
    return '-' if x is None else f'{x:.{nd}g}'


def table_rows(r):
    """(measurement, bare loop, ours, ours / bare) per row."""
    b = r['batch']
    size = f'{r["size"][0]} x {r["size"][1]}'
    bare1 = r['bare_b1']['images_per_s']
    bare = r[f'bare_b{b}']['images_per_s']
    rows = [(f'bare loop, batch 1: cv2.imread + normalise + forward '
             f'({r["images"]} images of {size}, img/s)', _fmt(bare1), '-',
             '-')]

    def ours(name, key, ref=bare):
        got = r[key]['images_per_s']
        rows.append((name, _fmt(ref), _fmt(got), _fmt(got / ref)))

    ours(f'infer_files (what tools/infer.py runs), batch {b}, model loaded,'
         f' vs bare loop batch {b} (img/s)', 'infer_files')
    ours(f'tools/infer.py main() in-process, batch {b}, with config and '
         'checkpoint load (img/s)', 'infer_main')
    load = r.get('model_load')
    rows.append(('  model load inside main() (init_landmark_model, s)', '-',
                 _fmt(load and load['median_s']), '-'))
    rows.append(('  process start + imports (fresh python, s; not in the '
                 'rows above)', '-', _fmt(r['startup_s']), '-'))
    return rows


def amp_rows(r):
    """The ``--amp`` run's row: images/s of tools/infer.py without and with
    --amp, and the median per-pair speed-up with its range."""
    a = r['amp_infer']
    where = r['machine']['cpu'] + (
        f', native bf16: {", ".join(a["native_bf16"])}' if a['native_bf16']
        else ', NO native bf16 (amx_bf16/avx512_bf16 absent): bf16 emulated'
    ) if r['device'] == 'cpu' else r['machine'].get('gpu', r['device'])
    sp = a['speedup']
    return [(f'tools/infer.py --amp vs fp32, main() with model load, batch '
             f'{r["batch"]}, {r["images"]} images of {r["size"][0]} x '
             f'{r["size"][1]} ({where})', _fmt(a['fp32']['images_per_s']),
             _fmt(a['amp']['images_per_s']),
             f'{sp["median"]:.3f} ({sp["min"]:.3f}–{sp["max"]:.3f}, '
             f'{sp["pairs"]} pairs)', f'>= {a["target"]:g}',
             'yes' if a['met'] else 'NO')]


def format_table(results):
    """The Markdown table of a run's ``results`` (docs/benchmarks.md holds
    it for the recorded run); an ``--amp`` run's has its own columns."""
    if 'amp_infer' in results:
        head = ('measurement (paired, runs alternated)', 'fp32 img/s',
                '--amp img/s', '--amp / fp32: median of pairs (range)',
                'target', 'met')
        return markdown_table(head, amp_rows(results))
    head = ('measurement', 'bare loop', 'ours', 'ours / bare')
    return markdown_table(head, table_rows(results))
