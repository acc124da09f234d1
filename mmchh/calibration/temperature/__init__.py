# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Temperature scaling: the logits' summaries (``logit_summary``), the
fits (``fit``) and which temperature is kept (``select``)."""
from .fit import fit_shared_temperature, fit_temperatures
from .logit_summary import LogitSummary, nll_from_summary, summarize_logits
from .select import select_temperatures

__all__ = [
    'LogitSummary', 'fit_shared_temperature', 'fit_temperatures',
    'nll_from_summary', 'select_temperatures', 'summarize_logits'
]
