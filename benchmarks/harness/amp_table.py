"""The table of ``benchmarks/run.py``'s mixed-precision rows: per row the
median of the per-pair ratios, their range, the pairs and the target."""
from .tables import markdown_table


def amp_caption(results):
    """The line above the table: the device, and on a CPU whether it has
    native bf16."""
    a = results['amp']
    if a['device'] != 'cpu':
        return (f'{results.get("device_name", a["device"])}: --amp is fp16 '
                f'autocast; inputs {a["size"][0]} x {a["size"][1]}.')
    native = a['native_bf16']
    bf16 = (f'native bf16 ({", ".join(native)})' if native else
            '**no native bf16** (neither amx_bf16 nor avx512_bf16): bf16 '
            'is emulated, and the --amp rows measure that')
    return (f'CPU {results["machine"]["cpu"]}, {results["machine"]["cores"]}'
            f' cores: {bf16}; inputs {a["size"][0]} x {a["size"][1]}.')


def amp_rows(results):
    """(measurement, median ratio, range, pairs, target, met) per row of
    ``results['amp']`` (see :mod:`.amp_step`); on a CPU without native
    bf16 every row with --amp says so."""
    a = results['amp']
    emulated = a['device'] == 'cpu' and not a['native_bf16']
    rows = []
    for part, batch in (('train', a['batch']), ('predict', 1)):
        for r in a[part]:
            target = '-' if r['target'] is None else f'<= {r["target"]}'
            met = '-' if r['met'] is None else ('yes' if r['met'] else 'NO')
            note = ('; bf16 emulated (no native bf16)'
                    if emulated and '--amp' in r['name'] else '')
            rows.append((f'{r["name"]} (batch {batch}{note})',
                         f'{r["median"]:.3f}',
                         f'{r["min"]:.3f}–{r["max"]:.3f}', str(r['pairs']),
                         target, met))
    return rows


def format_amp_table(results):
    """The caption and Markdown table of the mixed-precision rows."""
    head = ('measurement (paired, sides alternated step by step)',
            'median ratio', 'range', 'pairs', 'target', 'met')
    return amp_caption(results) + '\n\n' + markdown_table(
        head, amp_rows(results))
