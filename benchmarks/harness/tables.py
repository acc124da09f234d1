"""The benchmarks' results as Markdown, and results read back from JSON."""


def markdown_table(head, rows):
    """A Markdown table: the ``head`` cells, then one line per row of
    ``rows`` (cells as strings); no newline at the end."""
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def with_int_keys(value):
    """A results dict read back from JSON, with its integer keys (batch
    sizes, worker counts) integers again, as the run produced them."""
    if isinstance(value, dict):
        return {(int(k) if isinstance(k, str) and k.isdigit() else k):
                with_int_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_int_keys(v) for v in value]
    return value
