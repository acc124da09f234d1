"""docs/architecture.md stays true: imports run one way (down the rooms),
no module imports another's private name, no package file over 600 lines
and no function over 120 (``benchmarks/harness/`` too), and every script
under ``tools/`` and ``benchmarks/`` stays a thin front end of at most 300
lines."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / 'mmchh'
#: The benchmarks' library, held to the package's sizes.
HARNESS = ROOT / 'benchmarks' / 'harness'

#: The rooms of docs/architecture.md, bottom first: a module may import
#: its own room and any room of a lower layer, never one above it.
LAYERS = (
    ('utils', 'version'),
    ('datasets', ),
    ('codecs.utils', ),
    ('codecs', ),
    ('models', ),
    ('evaluation.functional', 'visualization'),
    # the synthetic set writes its label lines with the measurements' math
    ('datasets.synthetic', ),
    ('evaluation.metrics', ),
    ('evaluation', ),  # the package: functional + metrics, the baseline
    ('calibration', ),  # fitted after training, below the engine
    ('engine', ),
    ('apis', ),
    ('testing', ),
    ('demo', ),  # the whole job on the synthetic set
    ('mmchh', ),
)
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
#: ``init_landmark_model`` imports the whole package at call time, to
#: register every module before it builds a model from a config (the API
#: is the top room; the package import is registration, not a dependency)
REGISTRATION_IMPORTS = {('mmchh/apis/inference.py', 'mmchh')}
#: Folders with their own row on the map, inside another room's folder.
SUB_ROOMS = {('evaluation', 'functional'), ('evaluation', 'metrics'),
             ('codecs', 'utils'), ('datasets', 'synthetic')}


def room_of(module: str) -> str:
    parts = module.split('.')
    if len(parts) == 1:
        return 'mmchh'
    if len(parts) > 2 and (parts[1], parts[2]) in SUB_ROOMS:
        return f'{parts[1]}.{parts[2]}'
    return parts[1]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def package_files():
    return sorted(PACKAGE.rglob('*.py'))


def imports(path: pathlib.Path):
    """(imported module, names, line) of every import in ``path``."""
    module = module_name(path)
    package = module if path.name == '__init__.py' else \
        module.rpartition('.')[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module]
                                          if node.module else []))
            else:
                target = node.module or ''
            yield target, [a.name for a in node.names], node.lineno


def test_every_room_is_on_the_map():
    text = (ROOT / 'docs' / 'architecture.md').read_text()
    rooms = {room_of(module_name(p)) for p in package_files()}
    assert rooms <= set(LAYER), rooms - set(LAYER)
    for room in rooms - {'mmchh', 'evaluation', 'version'}:
        folder = room.replace('.', '/')
        assert f'`mmchh/{folder}/`' in text or f'`{folder}/`' in text, room


def test_imports_run_down_the_rooms():
    upward = []
    for path in package_files():
        source = room_of(module_name(path))
        rel = str(path.relative_to(ROOT))
        for target, _, line in imports(path):
            if target != 'mmchh' and not target.startswith('mmchh.'):
                continue
            dest = room_of(target)
            if dest == source or (rel, target) in REGISTRATION_IMPORTS:
                continue
            if LAYER[dest] >= LAYER[source]:
                upward.append(f'{rel}:{line} ({source}) imports {target} '
                              f'({dest})')
    assert not upward, '\n'.join(upward)


#: What builds a model: MMPose's entry points and its model registry.
MODEL_BUILDERS = frozenset(('init_model', 'build_pose_estimator', 'MODELS'))


def model_builds(tree: ast.AST):
    """(line, what) of every import or use of a model builder in
    ``tree``, and every import from ``mmpose.models``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if (node.module or '').startswith('mmpose.models'):
                yield node.lineno, f'from {node.module} import'
            for name in MODEL_BUILDERS.intersection(names):
                yield node.lineno, f'imports {name}'
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('mmpose.models'):
                    yield node.lineno, f'import {alias.name}'
        elif isinstance(node, ast.Name) and node.id in MODEL_BUILDERS:
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute) and node.attr in MODEL_BUILDERS:
            yield node.lineno, f'.{node.attr}'


def test_utils_never_builds_a_model():
    """``mmchh/utils/`` is plumbing: building a model (e.g. to check that
    a checkpoint fits a config) belongs to ``mmchh/models/``."""
    builds = [
        f'{path.relative_to(ROOT)}:{line} {what}'
        for path in sorted((PACKAGE / 'utils').rglob('*.py'))
        for line, what in model_builds(ast.parse(path.read_text()))
    ]
    assert not builds, '\n'.join(builds)


def test_model_builds_are_found():
    """The check above sees the three ways a module builds a model."""
    found = [
        what for _, what in model_builds(
            ast.parse('from mmpose.registry import MODELS\n'
                      'import mmpose.apis\n'
                      'MODELS.build(cfg)\n'
                      'mmpose.apis.init_model(cfg)\n'
                      'from mmpose.models import build_pose_estimator\n'))
    ]
    assert sorted(found) == [
        '.init_model', 'MODELS', 'from mmpose.models import',
        'imports MODELS', 'imports build_pose_estimator'
    ], found
    assert not list(model_builds(ast.parse('cfg.model.build = 1\n')))


def test_reading_converted_data_needs_no_converter():
    """The dataset, the split-leak check and the rest of ``datasets/``
    read a converted folder through ``datasets/conversion_folder.py``;
    only the converters themselves import ``datasets/converters/``."""
    converters = PACKAGE / 'datasets' / 'converters'
    readers = [
        f'{path.relative_to(ROOT)}:{line} imports {target}'
        for path in sorted((PACKAGE / 'datasets').rglob('*.py'))
        if converters not in path.parents
        for target, _, line in imports(path)
        if target.startswith('mmchh.datasets.converters')
    ]
    assert not readers, '\n'.join(readers)


@pytest.mark.parametrize('folder', ['mmchh', 'tools', 'benchmarks', 'tests'])
def test_no_private_name_imported_across_modules(folder):
    leaks = []
    for path in sorted((ROOT / folder).rglob('*.py')):
        for target, names, line in imports(path):
            for name in names:
                if name.startswith('_') and not name.startswith('__'):
                    leaks.append(f'{path.relative_to(ROOT)}:{line} imports '
                                 f'{name} from {target}')
    assert not leaks, '\n'.join(leaks)


def test_files_and_functions_stay_small():
    too_big = []
    libraries = package_files() + sorted(HARNESS.rglob('*.py'))
    for path in libraries + sorted((ROOT / 'tools').rglob('*.py')):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if path in libraries and text.count('\n') > 600:
            too_big.append(f'{rel}: {text.count(chr(10))} lines')
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 120:
                    too_big.append(f'{rel}:{node.lineno} {node.name}(): '
                                   f'{length} lines')
    assert not too_big, '\n'.join(too_big)


#: What a newcomer looks for, each answered by "Where to look" in one file.
LOOKED_FOR = ('ERE', 'temperature', 'frame', 'conformal', 'labelme')


def test_where_to_look_answers_in_one_file_each():
    text = (ROOT / 'docs' / 'architecture.md').read_text()
    section = text.split('## Where to look', 1)[1].split('\n## ', 1)[0]
    answers = [
        ' '.join(item.split('\n\n')[0].split())
        for item in section.split('\n- ')[1:]
    ]
    for word in LOOKED_FOR:
        found = [a for a in answers if word in a.split(':', 1)[0]]
        assert found, f'"Where to look" has no question about {word}'
        for answer in found:
            files = [f for f in answer.split('`')[1::2] if f.endswith('.py')]
            assert len(files) == 1, answer
            assert (PACKAGE / files[0]).is_file(), files[0]


#: A tool or benchmark script parses options, calls library code and
#: prints; past this many lines it is doing the library's work.
MAX_SCRIPT_LINES = 300


def test_tools_and_benchmarks_are_thin_front_ends():
    too_long = []
    for folder in ('tools', 'benchmarks'):
        for path in sorted((ROOT / folder).glob('*.py')):
            lines = path.read_text().count('\n')
            if lines > MAX_SCRIPT_LINES:
                too_long.append(f'{path.relative_to(ROOT)}: {lines} lines '
                                f'(move its logic into the package or '
                                f'benchmarks/harness/)')
    assert not too_long, '\n'.join(too_long)
