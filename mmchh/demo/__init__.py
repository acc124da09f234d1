# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The demo (``tools/demo.py``, ``make demo``): the whole job end to end on
the embedded synthetic ISBI-format set.

The top room of the package: its data stage draws from the synthetic
generator in :mod:`mmchh.testing`, its other stages run every room below.
What it promises to write (:mod:`.outputs`), its stages (:mod:`.stages`)
and its record of a run (:mod:`.report`); the tool only parses options,
calls the stages and prints.
"""
from .outputs import (DEMO_DATA_OUTPUTS, DEMO_OUTPUTS, missing_outputs,
                      outputs_markdown, remove_stale_outputs)
from .report import (NOT_AVAILABLE, format_number, format_pair,
                     format_with_interval, machine_info, results_markdown,
                     run_record, write_results)
from .stages import (NUM_CALIB, NUM_VAL, choose_precision,
                     load_calibration_report,
                     make_demo_data, prepare_run, run_test, stage,
                     test1_calibration_change, test1_mean_position_baseline,
                     train_and_test, write_before_after_diagram)

__all__ = [
    'DEMO_DATA_OUTPUTS', 'DEMO_OUTPUTS', 'NOT_AVAILABLE', 'NUM_CALIB',
    'NUM_VAL', 'choose_precision', 'format_number', 'format_pair', 'format_with_interval',
    'load_calibration_report', 'machine_info', 'make_demo_data',
    'missing_outputs', 'outputs_markdown', 'prepare_run',
    'remove_stale_outputs', 'results_markdown', 'run_record', 'run_test',
    'stage', 'test1_calibration_change', 'test1_mean_position_baseline',
    'train_and_test', 'write_before_after_diagram', 'write_results'
]
