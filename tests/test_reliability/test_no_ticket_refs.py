"""Code and docs say what a behaviour is and why, never which ticket asked
for it: a tracker number means nothing to a reader without the tracker,
and the sentence it replaces (the reason) is the one they need."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Where the project's own text lives.
FOLDERS = ('mmchh', 'tools', 'configs', 'docs', 'benchmarks', 'tests')
FILES = ('README.md', )
#: Text files: code, docs, configs, scripts and recorded results.
SUFFIXES = {
    '.py', '.md', '.sh', '.txt', '.yml', '.yaml', '.cfg', '.toml', '.json'
}
#: A tracker citation: the word issue(s) or ticket(s), any case, then a
#: number, with or without a '#'.
CITATION = re.compile(r'\b(?:issues?|tickets?)\s*#?\s*\d', re.IGNORECASE)


def project_files():
    paths = [ROOT / name for name in FILES]
    for folder in FOLDERS:
        paths += (ROOT / folder).rglob('*')
    this = pathlib.Path(__file__).resolve()
    for path in sorted(paths):
        if path.is_file() and path.suffix in SUFFIXES and \
                '__pycache__' not in path.parts and path.resolve() != this:
            yield path


def test_no_ticket_numbers_in_code_or_docs():
    found = []
    for path in project_files():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding='utf-8', errors='replace')
        for number, line in enumerate(text.splitlines(), 1):
            if CITATION.search(line):
                found.append(f'{rel}:{number}: {line.strip()}')
    assert not found, (
        'say what the behaviour is (or why), not which ticket asked for '
        'it:\n' + '\n'.join(found))
