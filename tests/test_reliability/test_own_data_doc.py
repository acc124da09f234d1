"""docs/own_data.md's DICOM/MetaImage loop is the recorded run.

``docs/examples/run_own_data_loop.py`` ran the loop the doc shows and wrote
``docs/results/own_data_loop/record.json`` (with copies of small files the
loop wrote). Checked here without running the loop (fast):

* the commands between the doc's loop markers are the recorded ones, in
  order, and the runner's own ``COMMANDS``; every one exited 0;
* every output line the doc shows there (```` ```text ```` blocks) is a
  line some recorded command printed, verbatim; a line ending in `` ...``
  is the start of one, and a line ``...`` stands for lines left out;
* the machine (CPU model, cores) and the loop's duration quoted are the
  record's;
* every ``tools/*.py`` and ``docs/examples/*.py`` a command in own_data.md
  names exists, and every ``--flag`` given to it is in its ``--help``;
* the files the doc links under ``docs/results/own_data_loop/`` exist;
* the example scripts work on a tiny folder: the DICOM/MetaImage headers
  carry the three spacings, and the review copies and the stand-in
  reviewer keep the points on the image's pixel grid.
"""
import json
import os.path as osp
import re
import runpy
import shlex

import pytest

from mmchh.testing.tool_loader import tool_help as help_text

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOC = 'docs/own_data.md'
RESULTS = 'docs/results/own_data_loop'
RUNNER = 'docs/examples/run_own_data_loop.py'
BEGIN = '<!-- own-data-loop:begin -->'
END = '<!-- own-data-loop:end -->'

FENCE = re.compile(r'^```([\w-]*)[^\n]*\n(.*?)^```', re.M | re.S)
SCRIPT = re.compile(r'(?:^|[\s;&|(])python3?\s+'
                    r'((?:tools|docs/examples)/[\w./-]+\.py)(?=\s|$)([^;&|]*)')
FLAG = re.compile(r'^\[?(--[A-Za-z][\w-]*)')
HELP_FLAG = re.compile(r'(?<![\w-])(--[A-Za-z][\w-]*)')
DURATION = re.compile(r'took (\d+) minutes')


def read(rel):
    with open(osp.join(REPO, rel), encoding='utf-8') as f:
        return f.read()


@pytest.fixture(scope='module')
def record():
    return json.loads(read(f'{RESULTS}/record.json'))


@pytest.fixture(scope='module')
def loop_section():
    text = read(DOC)
    assert text.count(BEGIN) == 1 and text.count(END) == 1, (
        f'{DOC}: needs exactly one {BEGIN} and one {END}')
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def shell_commands(body):
    """One command per logical line: continuations joined, comments cut,
    whitespace collapsed."""
    body = body.replace('\\\n', ' ')
    lines = [re.sub(r'(^|\s)#.*$', '', line) for line in body.splitlines()]
    return [' '.join(line.split()) for line in lines if line.strip()]


def loop_blocks(section):
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(section)]


def test_loop_commands_are_the_recorded_run(record, loop_section):
    shown = [
        cmd for lang, body in loop_blocks(loop_section) if lang == 'bash'
        for cmd in shell_commands(body)
    ]
    recorded = [' '.join(s['command'].split()) for s in record['steps']]
    runner = [
        ' '.join(c.split())
        for c in runpy.run_path(osp.join(REPO, RUNNER))['COMMANDS']
    ]
    assert shown == recorded, (
        f'{DOC}: the loop shows other commands than the recorded run '
        f'({RESULTS}/record.json); run python {RUNNER} and copy its output '
        'folder there')
    assert recorded == runner, (
        f'{RUNNER} COMMANDS changed since the recorded run: run it again')
    failed = [s['command'] for s in record['steps'] if s['returncode']]
    assert not failed, f'recorded commands that failed: {failed}'


def test_shown_output_lines_were_printed(record, loop_section):
    printed = {line for s in record['steps'] for line in s['output']}
    problems, seen = [], 0
    for lang, body in loop_blocks(loop_section):
        if lang != 'text':
            continue
        for line in body.splitlines():
            if line.strip() in ('', '...'):
                continue
            seen += 1
            if line in printed:
                continue
            if line.endswith(' ...') and any(
                    p.startswith(line[:-4]) for p in printed):
                continue
            problems.append(line)
    assert seen >= 20, 'the loop shows almost no output'
    assert not problems, (f'{DOC} shows lines no recorded command printed:\n' +
                          '\n'.join(problems))


def test_machine_and_duration_are_the_record(record, loop_section):
    machine = record['machine']
    assert machine['cpu'] in loop_section, (
        f'{DOC}: the loop must name the CPU it ran on: {machine["cpu"]}')
    assert f'{machine["cores"]} cores' in loop_section
    quoted = [int(n) for n in DURATION.findall(loop_section)]
    assert quoted, f'{DOC}: no "took N minutes" for the loop'
    minutes = round(record['duration_s'] / 60)
    assert all(n == minutes for n in quoted), (
        f'{DOC} says {quoted} minutes; the recorded run took '
        f'{record["duration_s"]:.0f} s')


def test_scripts_and_flags_exist():
    problems, scripts = [], set()
    for lang, body in FENCE.findall(read(DOC)):
        if lang not in ('', 'bash', 'sh', 'shell'):
            continue
        for line in shell_commands(body):
            for m in SCRIPT.finditer(line):
                script = m.group(1)
                scripts.add(script)
                if not osp.isfile(osp.join(REPO, script)):
                    problems.append(f'{script} does not exist')
                    continue
                accepted = set(HELP_FLAG.findall(help_text(script)))
                problems += [
                    f'{script} has no option {flag}'
                    for flag in (FLAG.match(t).group(1)
                                 for t in shlex.split(m.group(2))
                                 if FLAG.match(t)) if flag not in accepted
                ]
    assert {
        'tools/convert_landmarks.py', 'tools/infer.py',
        'docs/examples/make_own_xrays.py'
    } <= scripts, scripts
    assert not problems, f'{DOC}: ' + '\n'.join(problems)


def test_linked_result_files_exist(record):
    links = re.findall(r'\]\((results/own_data_loop/[^)#\s]+)', read(DOC))
    assert links, f'{DOC} links none of the files in {RESULTS}'
    for link in links:
        assert osp.isfile(osp.join(REPO, 'docs', link)), link
    for name in record['copies']:
        assert osp.isfile(osp.join(REPO, RESULTS, name)), name


def test_example_scripts_work(tmp_path):
    """The example folder has the promised spacings in its headers, and a
    review round trip (PNG copies, the stand-in reviewer) keeps the points
    on the image's pixel grid."""
    import cv2

    from mmchh.datasets.image_reader import read_image
    examples = osp.join(REPO, 'docs', 'examples')
    make = runpy.run_path(osp.join(examples, 'make_own_xrays.py'))
    out = tmp_path / 'own'
    make['main']([str(out), '--num-images', '3', '--num-new', '1'])
    got = {p.name: read_image(str(p)) for p in (out / 'xrays').iterdir()}
    assert {
        n: (i.spacing, i.spacing_source, i.size)
        for n, i in got.items()
    } == {
        '001.dcm': ((0.75, 0.75), 'PixelSpacing', (258, 320)),
        '002.mha': ((0.9, 0.9), 'header', (215, 267)),
        '003.dcm': ((1.0, 1.0), 'ImagerPixelSpacing', (194, 240)),
    }
    assert (out / 'names.txt').read_text().split('\n')[1:-1] == list(
        make['LANDMARKS'])
    csv_rows = (out / 'landmarks.csv').read_text().splitlines()
    assert len(csv_rows) == 1 + 3 * len(make['LANDMARKS']) * 2

    # a labelme file as tools/infer.py --format labelme writes it
    preds = tmp_path / 'preds'
    preds.mkdir()
    reading = (out / 'new_xrays_dr_a.csv').read_text().splitlines()[1:]
    truth = {
        r.split(',')[1]: [float(v) for v in r.split(',')[2:4]]
        for r in reading
    }
    shapes = [
        dict(label=name,
             points=[[x + 1.0, y]],
             group_id=None,
             description='',
             shape_type='point',
             flags={}) for name, (x, y) in truth.items()
    ]
    shapes[0]['points'] = [[truth['sella'][0] + 10.0, truth['sella'][1]]]
    doc = dict(version='5.4.1',
               flags={},
               shapes=shapes,
               imagePath=osp.relpath(out / 'new_xrays' / '901.dcm', preds),
               imageData=None,
               imageHeight=320,
               imageWidth=258,
               mmchh=dict(spacing=[0.75, 0.75]))
    (preds / '901.json').write_text(json.dumps(doc))
    review = tmp_path / 'review'
    runpy.run_path(osp.join(examples, 'labelme_review_copies.py'))['main'](
        [str(preds), str(review)])
    png = cv2.imread(str(review / '901.png'), cv2.IMREAD_UNCHANGED)
    assert png.dtype == 'uint8' and png.shape == (320, 258)
    copied = json.loads((review / '901.json').read_text())
    assert copied['imagePath'] == '901.png'
    assert copied['shapes'] == shapes
    runpy.run_path(osp.join(examples, 'simulate_review.py'))['main'](
        [str(review), str(out / 'new_xrays_dr_a.csv')])
    reviewed = json.loads((review / '901.json').read_text())['shapes']
    # 10 px = 7.5 mm off: moved onto the reading; 1 px = 0.75 mm: kept
    assert reviewed[0]['points'] == [truth['sella']]
    assert reviewed[1:] == shapes[1:]
