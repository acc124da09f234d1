"""Property: valid labelme, CSV and COCO inputs mutated at random give
either a named fault or exactly the input's coordinates.

Each example draws a small valid input (1-3 images, 3-5 named keypoints,
arbitrary float64 coordinates), applies 0-3 mutations and reads it. A
mutation is either harmless (another spelling of the same values: a float
size, reordered columns, legacy labelme keys, ...) or one the reader must
refuse (odd number spellings, duplicate ids and columns, unknown or missing
fields, truncation, ...). Invariant, checked both ways:

- refusing mutations: the reader raises a one-line
  :class:`ConversionError` naming the file; with ``skip_bad`` it records
  a fault instead (or raises, for a file-level fault), and every point it
  still gives is the input's point for that image and label;
- harmless mutations only: no fault and every point equal (float64) to
  the input's.
"""
import json
import os.path as osp
import warnings
from typing import Callable, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmchh.datasets.converters import ConversionError
from mmchh.datasets.converters.coco_reader import read_coco_marks
from mmchh.datasets.converters.csv_reader import read_csv_marks
from mmchh.datasets.converters.labelme_reader import read_labelme_file
from mmchh.datasets.converters.validation import BadInputPolicy

NAMES = ('sella', 'nasion', 'menton', 'porion', 'orbitale')
SIZE = (40, 32)
#: Spellings no reader may take for a number, as text.
ODD_TEXT = ('1_5', '0x1', 'nan', 'inf', ' inf', 'infinity', '-Infinity',
            '1e400', '', 'true', '\u0661', '--1', '1e', '.', '1.5.2')
#: JSON values no reader may take for a coordinate.
ODD_JSON = ('12.5', '1_5', True, False, None, float('nan'), float('inf'),
            10**400, [1.0], {})
PROPERTY = settings(max_examples=700,
                    deadline=None,
                    derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

coordinate = st.one_of(
    st.floats(0, SIZE[0] - 1, allow_nan=False, allow_infinity=False),
    st.integers(0, SIZE[1] - 1))
keypoints_count = st.integers(3, 5)


def in_order(mutations, harmless):
    """Harmless mutations first and truncation last, so that no later
    mutation undoes a refusing one (re-serialising the JSON would drop a
    duplicate key, a re-added size would fill a dropped one)."""
    return sorted(mutations,
                  key=lambda m: (m not in harmless, m == 'truncate'))


class Case(NamedTuple):
    """One example: a mutated file and how to read it back.

    Attributes:
        file_name (str): The file's name (one per reader, rewritten by
            every example).
        text (str): Its content.
        refused (bool): Whether a mutation must be refused.
        read (callable): ``read(path, policy)`` -> the reader's result.
        points_of (callable): result -> {(image, label): [(x, y), ...]}.
        expected (dict): (image, label) -> (x, y) of the valid input.
    """
    file_name: str
    text: str
    refused: bool
    read: Callable
    points_of: Callable
    expected: dict


def draw_mutations(draw, harmless, refusing):
    """0-3 mutations of ``harmless`` and ``refusing``, in the order
    :func:`in_order` applies them."""
    return in_order(
        draw(st.lists(st.sampled_from(harmless + refusing), max_size=3)),
        harmless)


def mutated_json(draw, data, mutate, harmless, refusing):
    """``data`` as JSON text after 0-3 drawn mutations, and whether one
    of them must be refused: ``mutate(data, mutation, draw)`` changes
    ``data`` in place or returns an edit of the text, applied after
    serialising, in order."""
    mutations = draw_mutations(draw, harmless, refusing)
    edits = [mutate(data, m, draw) for m in mutations]
    text = json.dumps(data)
    for edit in edits:
        text = edit(text) if edit else text
    return text, any(m in refusing for m in mutations)


def check_case(tmp_path_factory, case):
    """Writes ``case`` into the session's temporary folder and checks the
    invariant on it (:func:`check_outcome`)."""
    path = str(tmp_path_factory.getbasetemp() / case.file_name)
    with open(path, 'w') as f:
        f.write(case.text)
    check_outcome(path, case.refused,
                  lambda policy: case.read(path, policy), case.points_of,
                  case.expected)


def check_outcome(path, refused, read, points_of, expected):
    """The invariant (module docstring) for one mutated file.

    Args:
        read (callable): ``read(policy)`` -> the reader's result.
        points_of (callable): result -> {(image, label): [(x, y), ...]}.
        expected (dict): (image, label) -> (x, y) of the valid input (any
            number type; compared as float64).
    """
    expected = {k: tuple(map(float, p)) for k, p in expected.items()}
    try:
        result = read(BadInputPolicy())
    except ConversionError as e:
        assert refused, f'harmless input refused: {e}'
        message = str(e)
        assert osp.basename(path) in message and '\n' not in message
    else:
        assert not refused, 'a refusing mutation was read without a fault'
        got = points_of(result)
        assert got == {k: [v] for k, v in expected.items()}
        for key, [(x, y)] in got.items():  # float64, not another type
            assert type(x) is float and type(y) is float
        return
    policy = BadInputPolicy(skip_bad=True)
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter('always')
            result = read(policy)
    except ConversionError as e:  # a file-level fault: nothing read
        assert osp.basename(path) in str(e)
        return
    assert policy.faults and all(
        osp.basename(path) in f['problem'] for f in policy.faults)
    for key, given_points in points_of(result).items():
        assert all(p == expected[key] for p in given_points)


# ----------------------------------------------------------------- labelme

LABELME_HARMLESS = ('float_size', 'string_size', 'legacy_colours',
                    'shape_colour', 'mmchh_note', 'reverse_shapes', 'indent')
LABELME_REFUSED = ('unknown_key', 'unknown_shape_key', 'odd_coordinate',
                   'odd_size', 'drop_shapes', 'drop_points', 'drop_label',
                   'drop_shape_type', 'drop_height', 'rename_label',
                   'duplicate_key', 'truncate', 'bad_image_data',
                   'two_points')


def mutate_labelme(data, mutation, draw):
    """Applies one mutation to a labelme document; returns a text edit
    (callable on the serialised text) or None."""
    shapes = data.get('shapes') or [dict(points=[[0.0, 0.0]])]
    shape = shapes[draw(st.integers(0, len(shapes) - 1))]
    if mutation == 'float_size':
        data['imageWidth'] = float(data['imageWidth'])
    elif mutation == 'string_size':
        data['imageHeight'] = str(data['imageHeight'])
    elif mutation == 'legacy_colours':
        data.update(lineColor=[0, 255, 0, 128], fillColor=None)
    elif mutation == 'shape_colour':
        shape.update(line_color=None, fill_color=[1, 2, 3, 4])
    elif mutation == 'mmchh_note':
        data['mmchh'] = dict(source='tools/infer.py (mmchh)')
    elif mutation == 'reverse_shapes':
        shapes.reverse()
    elif mutation == 'indent':
        return lambda text: json.dumps(json.loads(text), indent=2)
    elif mutation == 'unknown_key':
        data[draw(st.sampled_from(['foo', 'imageSize', 'text']))] = 1
    elif mutation == 'unknown_shape_key':
        shape[draw(st.sampled_from(['text', 'score', 'visible']))] = 0
    elif mutation == 'odd_coordinate':
        pair = list((shape.get('points') or [[0.0, 0.0]])[0])
        pair[draw(st.integers(0, 1))] = draw(st.sampled_from(ODD_JSON))
        shape['points'] = [pair]
    elif mutation == 'odd_size':
        data[draw(st.sampled_from(['imageWidth', 'imageHeight']))] = draw(
            st.sampled_from([40.5, 'abc', True, '0x28', -40, 0, '1_6', []]))
    elif mutation == 'drop_shapes':
        data.pop('shapes', None)
    elif mutation in ('drop_points', 'drop_label'):
        shape.pop(mutation[5:], None)
    elif mutation == 'drop_shape_type':  # labelme's default: polygon
        shape.pop('shape_type', None)
    elif mutation == 'drop_height':
        data.pop('imageHeight', None)
    elif mutation == 'rename_label':
        shape['label'] = draw(st.sampled_from(['Sella', 'sella ', 'foo', 1]))
    elif mutation == 'duplicate_key':
        return lambda text: text[:-1] + ', "imageWidth": 40}'
    elif mutation == 'truncate':
        return lambda text: text[:draw(st.integers(1, max(1, len(text) - 1)))]
    elif mutation == 'bad_image_data':
        data['imageData'] = draw(st.sampled_from(['aGVsbG8=', '!', 7]))
    elif mutation == 'two_points':
        shape['points'] = (shape.get('points') or [[0.0, 0.0]]) * 2
    return None


@st.composite
def labelme_case(draw):
    names = NAMES[:draw(keypoints_count)]
    points = {n: (draw(coordinate), draw(coordinate)) for n in names}
    data = dict(version='5.4.1',
                flags={},
                shapes=[
                    dict(label=n,
                         points=[list(points[n])],
                         group_id=None,
                         description='',
                         shape_type='point',
                         flags={}) for n in names
                ],
                imagePath='001.png',
                imageData=None,
                imageHeight=SIZE[1],
                imageWidth=SIZE[0])
    text, refused = mutated_json(draw, data, mutate_labelme,
                                 LABELME_HARMLESS, LABELME_REFUSED)
    return Case(
        'labelme_property.json', text, refused,
        lambda path, policy: read_labelme_file(path, names, policy),
        lambda marks: {('001', label): [(x, y) for x, y, _ in pts]
                       for label, pts in marks.points.items()},
        {('001', n): p for n, p in points.items()})


@PROPERTY
@given(case=labelme_case())
def test_labelme_mutations_fault_or_read_exactly(tmp_path_factory, case):
    check_case(tmp_path_factory, case)


# ----------------------------------------------------------------- CSV

CSV_HARMLESS = ('spaces', 'exponent', 'blank_line', 'annotator', 'group')
CSV_REFUSED = ('odd_number', 'repeat_column', 'extra_column', 'drop_column',
               'rename_column', 'unknown_keypoint', 'extra_cell',
               'missing_cell', 'empty_image', 'group_conflict')


@st.composite
def csv_case(draw):
    names = NAMES[:draw(keypoints_count)]
    images = [f'{i:03d}' for i in range(1, draw(st.integers(1, 3)) + 1)]
    points = {(im, n): (draw(coordinate), draw(coordinate))
              for im in images for n in names}
    mutations = draw_mutations(draw, CSV_HARMLESS, CSV_REFUSED)
    columns = ['image', 'keypoint', 'x', 'y']
    rows = [dict(image=f'{im}.png', keypoint=n, x=repr(x), y=repr(y))
            for (im, n), (x, y) in points.items()]
    if 'annotator' in mutations or 'group' in mutations \
            or 'group_conflict' in mutations:
        columns += ['annotator', 'group']
        for row in rows:
            row.update(annotator='', group=f'p{row["image"][:3]}')
    row = draw(st.sampled_from(rows))
    for m in mutations:
        if m == 'spaces':
            row['x'] = f' {row["x"]}\t'
        elif m == 'exponent':
            row['y'] = f'{float(row["y"]):.17e}'
        elif m == 'odd_number':
            row[draw(st.sampled_from(['x', 'y']))] = draw(
                st.sampled_from(ODD_TEXT))
        elif m == 'unknown_keypoint':
            row['keypoint'] = draw(st.sampled_from(['foo', 'Sella', '']))
        elif m == 'empty_image':
            row['image'] = ' '
        elif m == 'group_conflict':  # each image has >= 3 rows
            row['group'] = 'another'
    order = draw(st.permutations(columns))
    header = list(order)
    if 'repeat_column' in mutations:
        header.append(draw(st.sampled_from(columns)))
    if 'extra_column' in mutations:
        header.append(draw(st.sampled_from(['visible', 'z', 'note', ''])))
    if 'drop_column' in mutations:  # every copy: a repeated one would stay
        dropped = draw(st.sampled_from(['image', 'keypoint', 'x', 'y']))
        header = [c for c in header if c != dropped]
    if 'rename_column' in mutations and 'x' in header:
        header[header.index('x')] = draw(st.sampled_from(['X', 'x_px']))
    lines = [','.join(header)]
    for r in rows:
        cells = [r.get(c, '0') for c in header]
        if r is row and 'extra_cell' in mutations:
            cells.append('1')
        # the next row: on the drawn one, a missing cell would undo an
        # extra one (each image has >= 3 rows)
        if r is rows[(rows.index(row) + 1) % len(rows)] and \
                'missing_cell' in mutations:
            cells.pop()
        lines.append(','.join(cells))
    if 'blank_line' in mutations:
        lines.append('')
    refused = any(m in CSV_REFUSED for m in mutations)
    return Case(
        'csv_property.csv', '\n'.join(lines) + '\n', refused,
        lambda path, policy: read_csv_marks(path, names, policy),
        lambda found: {(stem, label): [(x, y) for x, y, _ in pts]
                       for stem, by in found.items()
                       for marks in by.values() if not marks.rejected
                       for label, pts in marks.points.items()}, points)


@PROPERTY
@given(case=csv_case())
def test_csv_mutations_fault_or_read_exactly(tmp_path_factory, case):
    check_case(tmp_path_factory, case)


# ----------------------------------------------------------------- COCO

COCO_HARMLESS = ('float_size', 'string_size', 'writer_keys', 'v_is_1',
                 'segmentation')
COCO_REFUSED = ('duplicate_image_id', 'duplicate_annotation_id',
                'unknown_image_key', 'unknown_annotation_key',
                'odd_coordinate', 'odd_visibility', 'odd_image_id',
                'odd_size', 'truncate', 'short_keypoints')


def mutate_coco(data, mutation, draw):
    """Applies one mutation to a COCO document; returns a text edit or
    None."""
    image = draw(st.sampled_from(data['images']))
    ann = draw(st.sampled_from(data['annotations']))
    other_images = [im for im in data['images'] if im is not image]
    other_anns = [a for a in data['annotations'] if a is not ann]
    if mutation == 'float_size':
        image['width'] = float(image['width'])
    elif mutation == 'string_size':
        image['height'] = str(image['height'])
    elif mutation == 'writer_keys':
        image.update(split='train', spacing=[0.1, 0.1], original_file='a')
    elif mutation == 'v_is_1':
        ann['keypoints'][2] = 1
    elif mutation == 'segmentation':
        ann.update(segmentation=[], iscrowd=0, bbox=[0, 0, 4, 4], area=16)
    elif mutation == 'duplicate_image_id':
        (other_images or data['images'])[0]['id'] = image['id']
        if not other_images:
            data['images'].append(dict(image, file_name='zzz.png'))
    elif mutation == 'duplicate_annotation_id':
        if not other_anns:
            data['annotations'].append(dict(ann))
        else:
            other_anns[0]['id'] = ann['id']
    elif mutation == 'unknown_image_key':
        image[draw(st.sampled_from(['rotation', 'scale', 'Width']))] = 1
    elif mutation == 'unknown_annotation_key':
        ann[draw(st.sampled_from(['score', 'visible', 'keypoint']))] = 1
    elif mutation == 'odd_coordinate':
        ann['keypoints'][draw(st.sampled_from([0, 1]))] = draw(
            st.sampled_from(ODD_JSON))
    elif mutation == 'odd_visibility':
        ann['keypoints'][2] = draw(st.sampled_from([3, 0.5, True, -1, '2']))
    elif mutation == 'odd_image_id':
        ann['image_id'] = draw(
            st.sampled_from([str(ann['image_id']), -1, None, 1.5, True]))
    elif mutation == 'odd_size':
        image['width'] = draw(st.sampled_from([40.5, 'abc', True, 0]))
    elif mutation == 'truncate':
        return lambda text: text[:draw(st.integers(1, max(1, len(text) - 1)))]
    elif mutation == 'short_keypoints':
        ann['keypoints'] = ann['keypoints'][:-1]
    return None


@st.composite
def coco_case(draw):
    names = NAMES[:draw(keypoints_count)]
    count = draw(st.integers(1, 3))
    ids = draw(
        st.lists(st.integers(1, 10**6),
                 min_size=2 * count,
                 max_size=2 * count,
                 unique=True))
    points = {(f'{i:03d}', n): (draw(coordinate), draw(coordinate))
              for i in range(count) for n in names}
    data = dict(
        images=[
            dict(id=ids[i],
                 file_name=f'sub/{i:03d}.png',
                 width=SIZE[0],
                 height=SIZE[1]) for i in range(count)
        ],
        annotations=[
            dict(id=ids[count + i],
                 image_id=ids[i],
                 category_id=3,
                 keypoints=[
                     v for n in names for v in (*points[f'{i:03d}', n], 2)
                 ]) for i in range(count)
        ],
        categories=[dict(id=3, name='x', keypoints=list(names))])
    text, refused = mutated_json(draw, data, mutate_coco, COCO_HARMLESS,
                                 COCO_REFUSED)
    return Case(
        'coco_property.json', text, refused,
        lambda path, policy: read_coco_marks(path, names, policy),
        lambda found: {(stem, label): [(x, y) for x, y, _ in pts]
                       for stem, by in found.items()
                       for marks in by.values()
                       for label, pts in marks.points.items()}, points)


@PROPERTY
@given(case=coco_case())
def test_coco_mutations_fault_or_read_exactly(tmp_path_factory, case):
    check_case(tmp_path_factory, case)
