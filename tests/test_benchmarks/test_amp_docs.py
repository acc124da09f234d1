"""docs/benchmarks.md's mixed-precision tables and docs/seeds.md's --amp
table are the scripts' own renderings of the JSON files those runs wrote
(docs/results/), and the CPU they name is the one the runs recorded."""
import importlib.util
import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def script(name):
    spec = importlib.util.spec_from_file_location(
        f'amp_docs_{name}', osp.join(REPO, 'benchmarks', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def between(doc, marker):
    with open(osp.join(REPO, 'docs', doc)) as f:
        text = f.read()
    begin, end = f'<!-- {marker}:begin -->\n', f'<!-- {marker}:end -->'
    assert begin in text and end in text, f'{doc}: no {marker} markers'
    return text.split(begin, 1)[1].split(end, 1)[0]


def recorded(name):
    with open(osp.join(REPO, 'docs', 'results', name)) as f:
        return json.load(f)


@pytest.mark.parametrize('name, marker, results', [
    ('run', 'benchmarks-amp-cpu', 'benchmarks_amp_cpu.json'),
    ('infer_throughput', 'infer-throughput-amp-cpu',
     'infer_throughput_amp_cpu.json'),
], ids=['run_amp', 'infer_throughput_amp'])
def test_amp_benchmark_tables_are_the_recorded_runs(name, marker, results):
    module = script(name)
    data = recorded(results)
    if hasattr(module, 'with_int_keys'):
        data = module.with_int_keys(data)
    table = between('benchmarks.md', marker)
    assert table == module.format_table(data) + '\n'
    assert data['machine']['cpu'] in table or \
        data['machine']['cpu'] in between('benchmarks.md', marker)
    # the sides alternated step by step, at least 7 pairs after warm-up
    pairs = ([r['pairs'] for r in data['amp']['train'] + data['amp']['predict']]
             if 'amp' in data else [data['amp_infer']['speedup']['pairs']])
    assert min(pairs) >= 7


def test_amp_seed_table_is_the_recorded_run():
    claims = script('claims_over_seeds')
    data = recorded('amp_over_seeds.json')
    table = between('seeds.md', 'amp-over-seeds')
    assert table == claims.format_tables(data) + '\n'
    assert len(data['seeds']) >= 3
    assert {r['arm'] for r in data['rows']} >= {'mean', 'mean_amp'}
    with open(osp.join(REPO, 'docs', 'seeds.md')) as f:
        assert data['machine']['cpu'] in f.read()
