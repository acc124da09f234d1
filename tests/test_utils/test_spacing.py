"""The one spacing type: what it accepts, what it refuses and with which
words, float64 kept, the source kept."""
import math
from fractions import Fraction

import numpy as np
import pytest

from mmchh.utils.errors import InputError
from mmchh.utils.spacing import Spacing, SpacingError, spacing_array


class LayerError(InputError):
    """Stands for a layer's own error type (converter, dataset)."""


@pytest.mark.parametrize('value, xy', [
    (0.1, (0.1, 0.1)),
    (2, (2.0, 2.0)),
    ((0.1, 0.125), (0.1, 0.125)),
    ([0.3, 0.2], (0.3, 0.2)),
    ([0.4], (0.4, 0.4)),
    (np.float32(0.1), (float(np.float32(0.1)), float(np.float32(0.1)))),
    (np.float64(0.1), (0.1, 0.1)),
    (np.int64(3), (3.0, 3.0)),
    (np.array(0.5), (0.5, 0.5)),
    (np.array([0.1, 0.2], np.float32),
     (float(np.float32(0.1)), float(np.float32(0.2)))),
    (np.array([0.1, 0.2]), (0.1, 0.2)),
    ([np.float32(0.5), 0.25], (0.5, 0.25)),
    (Fraction(1, 4), (0.25, 0.25)),
    (1e-300, (1e-300, 1e-300)),
], ids=['float', 'int', 'tuple', 'list', 'one_element_list', 'np_float32',
        'np_float64', 'np_int', 'array_0d', 'array_float32', 'array_float64',
        'mixed_list', 'fraction', 'tiny'])
def test_parse_numbers_pairs_and_arrays(value, xy):
    spacing = Spacing.parse(value, 'spacing')
    assert spacing.xy == xy
    assert type(spacing.x) is float and type(spacing.y) is float
    assert spacing.array().dtype == np.float64
    assert spacing.array().tolist() == list(xy)


@pytest.mark.parametrize('value, why', [
    (float('nan'), 'not finite'),
    (float('inf'), 'not finite'),
    ((0.1, float('-inf')), 'not finite'),
    (np.array([0.1, np.nan]), 'not finite'),
    (0, 'not > 0'),
    (0.0, 'not > 0'),
    (-0.1, 'not > 0'),
    ((0.1, -0.2), 'not > 0'),
    ((0.1, 0.2, 0.3), '3 values'),
    ([], '0 values'),
    (np.zeros((2, 2)) + 0.1, '4 values'),
    ([[0.1, 0.2]], 'shape (1, 2)'),
    (True, 'a bool'),
    (np.bool_(True), 'a bool'),
    ([True, 0.1], 'bool'),
    (np.array([True, True]), 'bools'),
    ('0.1', 'text'),
    (b'0.1', 'text'),
    (['0.1', '0.2'], 'text'),
    ([0.1, '0.2'], 'text'),
    (None, 'no value'),
    ([0.1, None], 'NoneType'),
    (1 + 2j, 'complex'),
    ([[0.1], [0.1, 0.2]], 'not an array of numbers'),
    ({'x': 0.1}, 'dict'),
], ids=['nan', 'inf', 'minus_inf_y', 'nan_array', 'zero_int', 'zero',
        'negative', 'negative_y', 'three', 'empty', 'two_by_two', 'row',
        'bool', 'np_bool', 'bool_in_list', 'bool_array', 'string', 'bytes',
        'strings', 'string_in_list', 'none', 'none_in_list', 'complex',
        'ragged', 'dict'])
def test_refusals_name_the_field_and_say_why(value, why):
    with pytest.raises(SpacingError) as info:
        Spacing.parse(value, 'train.json (image 001.png): "spacing"')
    message = str(info.value)
    assert message.startswith('train.json (image 001.png): "spacing" must '
                              'be one or two positive finite numbers')
    assert why in message, message
    assert isinstance(info.value, InputError)
    assert isinstance(info.value, ValueError)  # callers catching ValueError


def test_the_layer_chooses_its_error_type():
    with pytest.raises(LayerError, match=r'^--spacing must be .*got -1'):
        Spacing.parse(-1, '--spacing', error=LayerError)
    with pytest.raises(LayerError, match='--spacing'):
        Spacing.parse_optional('x', '--spacing', error=LayerError)


def test_none_is_explicit():
    assert Spacing.parse_optional(None) is None
    assert Spacing.parse_optional(0.2, source='argument') == Spacing(
        0.2, 0.2, 'argument')
    with pytest.raises(SpacingError, match=r'^spacing must be .*no value'):
        Spacing.parse(None)


def test_source_kept_and_the_type_is_frozen():
    spacing = Spacing.parse((0.1, 0.2), 'x', source='header')
    assert spacing.source == 'header'
    assert Spacing.parse(spacing, 'y') is spacing
    with pytest.raises(AttributeError):
        spacing.x = 1.0  # frozen
    assert Spacing.parse(0.1).source == 'given'


@pytest.mark.parametrize('x, y', [(0.0, 0.1), (math.nan, 0.1), (True, 0.1),
                                  ('0.1', 0.1), (0.1, -1)],
                         ids=['zero', 'nan', 'bool', 'text', 'negative'])
def test_the_constructor_checks_too(x, y):
    with pytest.raises(SpacingError, match=r'Spacing\.[xy]'):
        Spacing(x, y)


def test_from_header_is_none_when_unusable():
    assert Spacing.from_header(('0.1', '0.3'), 'ImagerPixelSpacing') == \
        Spacing(0.1, 0.3, 'ImagerPixelSpacing')
    for bad in ((0.1, ), (0.1, 0.2, 0.3), (0.0, 0.1), (math.nan, 0.1),
                ('a', 0.1), None, 5):
        assert Spacing.from_header(bad, 'header') is None, bad


def test_array_dtype_and_its_range():
    spacing = Spacing.parse((0.1, 0.2))
    assert spacing.array(np.float32).dtype == np.float32
    assert spacing.array(np.float32).tolist() == np.asarray(
        [0.1, 0.2], np.float32).tolist()
    with pytest.raises(LayerError, match=r'^rec: "spacing" must .*float32'):
        Spacing.parse(1e39).array(np.float32, 'rec: "spacing"', LayerError)


def test_spacing_array_per_leading_index():
    assert spacing_array(0.1).tolist() == [0.1, 0.1]
    assert spacing_array([(0.1, 0.2), (0.3, 0.4)]).shape == (2, 2)
    assert spacing_array(np.full((3, 1), 0.5)).tolist() == [[0.5, 0.5]] * 3
    assert spacing_array(np.float32(0.1)).dtype == np.float64
    assert spacing_array(Spacing(0.1, 0.2)).tolist() == [0.1, 0.2]
    for bad, why in (([(0.1, 0.2, 0.3)], 'last axis of 3'),
                     ([(0.1, 0.2), (0.1, 0.0)], 'not > 0'),
                     (np.array([[np.nan, 0.1]]), 'not finite'),
                     (True, 'bool')):
        with pytest.raises(SpacingError, match=f'^spacing must .*{why}'):
            spacing_array(bad)
