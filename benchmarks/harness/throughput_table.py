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


def format_table(results):
    """The Markdown table of a run's ``results`` (docs/benchmarks.md holds
    it for the recorded run)."""
    head = ('measurement', 'bare loop', 'ours', 'ours / bare')
    return markdown_table(head, table_rows(results))
