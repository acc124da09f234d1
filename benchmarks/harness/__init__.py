"""The benchmarks' library: what the scripts in ``benchmarks/`` measure and
how they show it; the scripts themselves only parse options, call these
modules in order and print.

Shared by every benchmark: :mod:`.timing` (progress lines, device
synchronisation, calls timed alternately), :mod:`.memory` (process RSS,
tensors saved for backward), :mod:`.machine` (what the figures were
measured on) and :mod:`.tables` (Markdown tables, results read back from
JSON). Then one module per measurement, named after what it measures, and
one per results table.

The scripts put ``benchmarks/`` on ``sys.path``, so these modules are
imported as ``harness.<module>`` and import the two sides of
``benchmarks/run.py`` as ``ours`` and ``reference``.
"""
