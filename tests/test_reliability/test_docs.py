"""Docs that cannot go stale.

Every command, flag, path, link and number in README.md and docs/*.md is
checked against what the code really does:

* every ``python tools/X.py`` / ``python benchmarks/X.py`` / ``bash
  tools/X.sh`` / ``make TARGET`` in a fenced block or inline code exists,
  and every ``--flag`` given to a Python tool is in that tool's ``--help``;
* every repository path (``tools/``, ``configs/``, ``mmchh/``, ``tests/``,
  ``docs/``...) and every local Markdown link exists;
* every ``work_dirs/demo/...`` file the docs name is one the demo promises
  (``DEMO_OUTPUTS``, which the demo itself checks after a run), and every
  ``data/synthetic_ceph...`` path exists after a real (tiny) run of the
  demo's own data stages;
* ``tools/infer.py`` pointed at the demo's images is given the spacing of
  those images (ERE in mm depends on it);
* the results table in docs/results.md is what the demo's writer makes of
  the recorded JSON committed beside it, and the demo duration quoted in
  README.md and getting_started.md is that run's.
"""
import glob
import json
import math
import os.path as osp
import re
import shlex

import pytest

from mmchh.testing.tool_loader import tool_help as help_text


REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOC_FILES = ['README.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md')))
RESULTS_JSON = osp.join(REPO, 'docs', 'results', 'demo_results.json')
RESULTS_BEGIN = '<!-- demo-results:begin -->'
RESULTS_END = '<!-- demo-results:end -->'
OUTPUTS_BEGIN = '<!-- demo-outputs:begin -->'
OUTPUTS_END = '<!-- demo-outputs:end -->'

# Markdown: fenced blocks, inline code, links
FENCE = re.compile(r'^```([\w-]*)[^\n]*\n(.*?)^```', re.M | re.S)
INLINE = re.compile(r'`([^`\n]+)`')
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')

# commands: python tools/X.py ..., bash tools/X.sh, make TARGET, their flags
SCRIPT = re.compile(
    r'(?:^|[\s;&|(])(?:python3?|\S*/python3?)\s+'
    r'((?:tools|benchmarks)/[\w./-]+\.py)(?=\s|$)([^;&|]*)')
SHELL_SCRIPT = re.compile(r'(?:^|[\s;&|(])bash\s+(tools/[\w./-]+\.sh)\b')
MAKE = re.compile(r'(?:^|[;&|(]\s*)make\s+([A-Za-z][\w-]*)')
FLAG = re.compile(r'^\[?(--[A-Za-z][\w-]*)')
HELP_FLAG = re.compile(r'(?<![\w-])(--[A-Za-z][\w-]*)')
OUTPUT_FLAG_BEFORE = re.compile(r'--(?:out-dir|work-dir|out|show-dir)\s+$')

# paths: each starts where no path character stands before it (a
# repository path not after ':' either)
PATH_START = r'(?<![\w./-])'
REPO_PATH = re.compile(
    r'(?<![\w./:-])((?:tools|configs|mmchh|tests|benchmarks|requirements|'
    r'docs)/[\w./*-]*[\w*])')
DEMO_WORK_PATH = re.compile(PATH_START + r'work_dirs/demo/([\w./*-]*[\w*])')
CHECKPOINT_PATH = re.compile(PATH_START + r'(work_dirs/[\w./*-]+\.pth)')
DEMO_DATA_PATH = re.compile(PATH_START + r'data/(synthetic_ceph[\w./*-]*)')

DEMO_MINUTES = re.compile(r'took about (\d+) minutes')

#: pip's options in docs/install.md's recipe (not mmchh tools)
PIP_FLAGS = {'--no-binary', '--no-build-isolation', '--no-deps'}


def read(rel):
    with open(osp.join(REPO, rel), encoding='utf-8') as f:
        return f.read()


def split_doc(text):
    """(fenced blocks as (lang, body), the text outside them)."""
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]
    return blocks, FENCE.sub('', text)


def shell_lines(body):
    """Logical lines of a shell block: continuations joined, comments cut.
    """
    body = body.replace('\\\n', ' ')
    return [re.sub(r'(^|\s)#.*$', '', line) for line in body.splitlines()]


def documented_commands():
    """(doc, command text) for every shell line and inline code span."""
    out = []
    for doc in DOC_FILES:
        blocks, prose = split_doc(read(doc))
        for lang, body in blocks:
            if lang in ('', 'bash', 'sh', 'shell', 'console'):
                out += [(doc, line) for line in shell_lines(body)
                        if line.strip()]
        # `tools/X.py ARGS` in prose is a command too
        out += [(doc, 'python ' + span if re.match(
            r'(tools|benchmarks)/[\w/-]+\.py ', span) else span)
                for span in INLINE.findall(prose)]
    return out


def script_calls():
    """(doc, script, flags, argv after the script) per documented call."""
    calls = []
    for doc, line in documented_commands():
        for m in SCRIPT.finditer(line):
            rest = m.group(2).split()
            flags = [FLAG.match(tok).group(1) for tok in rest
                     if FLAG.match(tok)]
            calls.append((doc, m.group(1), flags, rest))
    return calls


@pytest.fixture(scope='module')
def demo():
    """The demo's library (its names are what the docs may use)."""
    import mmchh.demo
    return mmchh.demo


@pytest.fixture(scope='module')
def demo_data(demo, tmp_path_factory):
    """The demo's own data stages, run for real with few images."""
    data_dir = str(tmp_path_factory.mktemp('demo_data'))
    made = demo.make_demo_data(
        data_dir, (128, 160), num_train=demo.NUM_VAL + demo.NUM_CALIB + 2,
        num_test1=1, num_test2=1, progress=False)
    return dict(data_dir=data_dir, **made)


@pytest.fixture(scope='module')
def recorded():
    with open(RESULTS_JSON, encoding='utf-8') as f:
        text = f.read()

    def reject(token):
        raise AssertionError(f'{RESULTS_JSON}: bare {token} is not JSON')

    return json.loads(text, parse_constant=reject)


def between(text, begin, end, doc):
    assert text.count(begin) == 1 and text.count(end) == 1, (
        f'{doc}: needs exactly one {begin} and one {end}')
    return text.split(begin, 1)[1].split(end, 1)[0].strip('\n') + '\n'


def test_documented_scripts_and_make_targets_exist():
    makefile = read('Makefile')
    targets = set(re.findall(r'^([A-Za-z][\w-]*)\s*:(?!=)', makefile, re.M))
    problems, seen = [], 0
    for doc, line in documented_commands():
        for script in [m.group(1) for m in SCRIPT.finditer(line)] + \
                SHELL_SCRIPT.findall(line):
            seen += 1
            if not osp.isfile(osp.join(REPO, script)):
                problems.append(f'{doc}: {script} does not exist')
        for target in MAKE.findall(line):
            seen += 1
            if target not in targets:
                problems.append(f'{doc}: `make {target}` is not a target of '
                                f'the Makefile ({sorted(targets)})')
    assert seen > 20, 'the command parser found almost nothing'
    assert not problems, '\n'.join(problems)


def test_documented_flags_are_accepted():
    problems = []
    calls = script_calls()
    assert len({c[1] for c in calls}) >= 6, calls
    for doc, script, flags, _ in calls:
        if not osp.isfile(osp.join(REPO, script)):
            continue  # reported by the test above
        accepted = set(HELP_FLAG.findall(help_text(script)))
        assert '--help' in accepted, (script, help_text(script))
        problems += [f'{doc}: {script} has no option {flag} (its --help: '
                     f'{sorted(accepted)})' for flag in flags
                     if flag not in accepted]
    assert not problems, '\n'.join(problems)


def test_every_documented_flag_exists_somewhere():
    """Flags in tables and prose too: some tool must still accept them."""
    scripts = sorted(
        osp.relpath(p, REPO)
        for p in glob.glob(osp.join(REPO, 'tools', '**', '*.py'),
                           recursive=True) +
        glob.glob(osp.join(REPO, 'benchmarks', '*.py'))
        if 'ArgumentParser' in read(osp.relpath(p, REPO)))
    accepted = set()
    for script in scripts:
        accepted |= set(HELP_FLAG.findall(help_text(script)))
    problems = []
    for doc in DOC_FILES:
        for flag in set(HELP_FLAG.findall(read(doc))) - PIP_FLAGS:
            if flag not in accepted:
                problems.append(f'{doc}: no tool accepts {flag}')
    assert not problems, '\n'.join(problems)


def test_readme_registry_names_exist():
    """Each name in the second column of README's "What you get" table is
    registered with MMPose (``type=...`` in a config), a public mmchh
    function or module, or a repository path."""
    import importlib.util

    import mmpose.registry as registry

    import mmchh  # noqa: F401
    registries = [getattr(registry, n) for n in (
        'MODELS', 'KEYPOINT_CODECS', 'TRANSFORMS', 'DATASETS', 'METRICS',
        'HOOKS')]
    modules = [importlib.import_module(m) for m in (
        'mmchh.evaluation.functional', 'mmchh.apis', 'mmchh.engine',
        'mmchh.visualization')]
    rows = re.findall(r'^\| [^|]+ \| ([^|]+) \| [^|]+ \|$', read('README.md'),
                      re.M)
    names = [n for row in rows for n in INLINE.findall(row)]
    assert len(names) >= 15, names
    problems = []
    for name in names:
        if '/' in name:
            found = osp.exists(osp.join(REPO, name))
        elif '.' in name:
            found = importlib.util.find_spec(name) is not None
        elif name[0].isupper():
            found = any(r.get(name) is not None for r in registries)
        else:
            found = any(hasattr(m, name) for m in modules)
        if not found:
            problems.append(f'README.md: `{name}` is not registered / not '
                            'found')
    assert not problems, '\n'.join(problems)


def test_documented_csv_columns_are_the_written_ones():
    """The column lists in api.md / measurements.md are the writer's."""
    from mmchh.apis.batch_infer import CSV_COLUMNS, MEASUREMENT_CSV_COLUMNS
    for doc, first, columns in (
            ('docs/api.md', 'image, landmark,', CSV_COLUMNS),
            ('docs/measurements.md', 'image, measurement,',
             MEASUREMENT_CSV_COLUMNS)):
        spans = re.findall(r'`(' + re.escape(first) + r'[^`]*)`', read(doc))
        assert spans, f'{doc}: no column list starting with {first}'
        for span in spans:
            assert ' '.join(span.split()).split(', ') == list(columns), (
                f'{doc} documents the columns {span!r}; the writer writes '
                f'{", ".join(columns)}')


def test_repository_paths_and_links_exist():
    problems = []
    for doc in DOC_FILES:
        text = read(doc)
        for path in set(REPO_PATH.findall(text)):
            if not glob.glob(osp.join(REPO, path)):
                problems.append(f'{doc}: {path} does not exist')
        _, prose = split_doc(text)
        for target in LINK.findall(prose):
            if re.match(r'^(https?:|mailto:|#)', target):
                continue
            path = osp.join(REPO, osp.dirname(doc), target.split('#')[0])
            if not osp.exists(path):
                problems.append(f'{doc}: link to {target} is broken')
    assert not problems, '\n'.join(problems)


def test_demo_work_dir_paths_are_promised_outputs(demo):
    problems, seen = [], 0
    for doc in DOC_FILES:
        text = read(doc)
        for m in DEMO_WORK_PATH.finditer(text):
            if OUTPUT_FLAG_BEFORE.search(text[max(0, m.start() - 20):
                                              m.start()]):
                continue  # another command's output, not the demo's
            seen += 1
            # the exact name: a file whose name depends on the run (the
            # best checkpoint's epoch) must be written as the pattern
            if m.group(1) not in demo.DEMO_OUTPUTS:
                problems.append(
                    f'{doc}: work_dirs/demo/{m.group(1)} is not a name make '
                    f'demo promises (DEMO_OUTPUTS: '
                    f'{sorted(demo.DEMO_OUTPUTS)})')
    assert seen >= 5
    assert not problems, '\n'.join(problems)


def test_checkpoints_are_in_a_work_dir_some_command_writes():
    """``work_dirs/X/*.pth`` only where make demo, a ``--work-dir`` or a
    training with the default work dir (``work_dirs/<config name>``) puts
    checkpoints."""
    known = {'work_dirs/demo'}
    for _, script, _, argv in script_calls():
        if '--work-dir' in argv:
            known.add(argv[argv.index('--work-dir') + 1].rstrip('/'))
        elif script == 'tools/train.py' and argv and \
                argv[0].endswith('.py'):
            known.add('work_dirs/' + osp.splitext(osp.basename(argv[0]))[0])
    problems = []
    for doc in DOC_FILES:
        for path in set(CHECKPOINT_PATH.findall(read(doc))):
            if osp.dirname(path) not in known:
                problems.append(f'{doc}: no documented command writes '
                                f'{path} (known work dirs: {sorted(known)})')
    assert not problems, '\n'.join(problems)


def test_demo_outputs_table_is_generated(demo):
    doc = 'docs/getting_started.md'
    assert between(read(doc), OUTPUTS_BEGIN, OUTPUTS_END, doc) == \
        demo.outputs_markdown()


def test_stale_and_missing_demo_outputs(demo, tmp_path):
    """An earlier run's outputs are removed first (only those), so a
    missing output of this run is named, never hidden by an old copy."""
    work = tmp_path / 'work'
    for name in demo.DEMO_OUTPUTS:
        path = work / name.replace('*', '30')
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'x')
    (work / 'mine.txt').write_text('not the demo\'s')
    assert demo.missing_outputs(str(work)) == []
    (work / 'unc_roc.png').unlink()
    assert demo.missing_outputs(str(work)) == ['unc_roc.png']
    removed = demo.remove_stale_outputs(str(work))
    assert len(removed) == len(demo.DEMO_OUTPUTS) - 1
    assert demo.missing_outputs(str(work)) == list(demo.DEMO_OUTPUTS)
    assert (work / 'mine.txt').read_text() == 'not the demo\'s'


def test_demo_data_paths_exist_after_the_demo_data_stages(demo, demo_data):
    data_dir = demo_data['data_dir']
    for pattern in demo.DEMO_DATA_OUTPUTS:
        assert glob.glob(osp.join(data_dir, pattern)), (
            f'DEMO_DATA_OUTPUTS promises {pattern}; the data stages did not '
            'write it')
    problems, seen = [], 0
    for doc in DOC_FILES:
        for rel in set(DEMO_DATA_PATH.findall(read(doc))):
            seen += 1
            if not glob.glob(osp.join(data_dir, rel.rstrip('/.'))):
                problems.append(f'{doc}: data/{rel} is not written by the '
                                'demo')
    assert seen >= 3
    assert not problems, '\n'.join(problems)


def _spacing_of(demo_data, image_arg):
    """The mm/px of the demo images a documented command points at."""
    rel = image_arg.split('data/', 1)[1]
    if rel.startswith('synthetic_ceph/'):
        return tuple(demo_data['synthetic']['spacing_mm'])
    with open(osp.join(demo_data['coco'], 'test1.json')) as f:
        spacing = json.load(f)['images'][0]['spacing']
    return tuple(spacing)


def test_infer_on_demo_images_gets_their_spacing(demo_data):
    problems, seen = [], 0
    for doc, script, _, argv in script_calls():
        if script != 'tools/infer.py' or not argv or \
                not argv[0].startswith('data/synthetic_ceph'):
            continue
        seen += 1
        true = _spacing_of(demo_data, argv[0])
        if '--spacing' not in argv:
            problems.append(f'{doc}: infer on {argv[0]} without --spacing '
                            f'(its pixels are {true} mm)')
            continue
        i = argv.index('--spacing') + 1
        given = [float(v) for v in argv[i:i + 2]
                 if re.fullmatch(r'[\d.]+', v)]
        given = tuple(given * 2 if len(given) == 1 else given)
        if not all(math.isclose(g, t, rel_tol=1e-3)
                   for g, t in zip(given, true)):
            problems.append(f'{doc}: `{shlex.join(argv)}` passes spacing '
                            f'{given}; those images are {true} mm/px')
    assert seen >= 1
    assert not problems, '\n'.join(problems)


def test_results_table_is_the_recorded_run(demo, recorded):
    doc = 'docs/results.md'
    table = between(read(doc), RESULTS_BEGIN, RESULTS_END, doc)
    assert table == demo.results_markdown(recorded), (
        f'{doc}: the table between the markers must be exactly what '
        'tools/demo.py writes to demo_results.md (mmchh.demo.'
        'results_markdown) for '
        'docs/results/demo_results.json; copy both from one run')
    assert recorded['run']['command'].startswith('python tools/demo.py')


def test_demo_duration_quoted_is_the_recorded_one(recorded):
    minutes = round(recorded['run']['duration_s'] / 60)
    for doc in ('README.md', 'docs/getting_started.md'):
        quoted = [int(n) for n in DEMO_MINUTES.findall(read(doc))]
        assert quoted, f'{doc}: no "took about N minutes" for make demo'
        assert all(n == minutes for n in quoted), (
            f'{doc} says {quoted} minutes; the recorded run took '
            f'{recorded["run"]["duration_s"]:.0f} s')


def test_results_markdown_shows_missing_numbers_as_na(demo, recorded):
    broken = json.loads(json.dumps(recorded))
    broken['test1']['ceph/MRE'] = None
    broken['calibration'] = None
    text = demo.results_markdown(broken)
    assert '| Test1 MRE / SDR 2 mm / SDR 4 mm | n/a /' in text
    assert '| calibration split NLL before → after | n/a → n/a |' in text


@pytest.mark.parametrize('script, marker, results', [
    ('run', 'benchmarks-cpu', 'benchmarks_cpu.json'),
    ('infer_throughput', 'infer-throughput-cpu', 'infer_throughput_cpu.json'),
    ('measurement_scores', 'measurement-scores', 'measurement_scores.json'),
])
def test_benchmark_tables_are_the_recorded_runs(script, marker, results):
    """The benchmark tables in docs/benchmarks.md (docs/measurements.md for
    the measurement scores) are the scripts' own rendering of the JSON
    files those runs wrote (docs/results/)."""
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location(
        f'bench_{script}', osp.join(REPO, 'benchmarks', f'{script}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(osp.join(REPO, 'docs', 'results', results)) as f:
        recorded = json.load(f)
    if hasattr(module, 'with_int_keys'):
        recorded = module.with_int_keys(recorded)
    doc = ('docs/measurements.md' if script == 'measurement_scores' else
           'docs/benchmarks.md')
    table = between(read(doc), f'<!-- {marker}:begin -->',
                    f'<!-- {marker}:end -->', doc)
    assert table == module.format_table(recorded) + '\n', (
        f'{doc}: the {marker} table must be exactly what '
        f'benchmarks/{script}.py renders for docs/results/{results}')
