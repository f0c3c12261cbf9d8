"""Every document the code, configs, tests and docs refer to is one a user has.

(a) No reference to the project's internal specification files (``oaa.md §2.4``,
    ``spec A11``, ``the spec``, ``specs/...``): cite the paper (section, equation,
    table), the official code (repository and file) or a page under ``docs/``.
(b) Every relative path to a Markdown file (``docs/cam_format.md``, ``cam_format.md``
    inside ``docs/``, ``[text](page.md#anchor)``) names a file of this repository; a
    ``#anchor`` or a ``section 'Title'`` after it names a heading of that file. A
    Markdown file of another repository is cited by its URL.
"""
import os
import os.path as osp
import re

import pytest

from tests.conftest import REPO

SCANNED_DIRS = ('mmwsss', 'configs', 'tools', 'tests', 'docs')
SCANNED_FILES = ('README.md', 'Makefile', 'setup.py')
SUFFIXES = ('.py', '.md', '.sh', '.txt', '.yml', '.yaml', '.cfg', '.ini')
SELF = osp.abspath(__file__)

# (a) references to the internal specification. The method pages of this repository
# (``docs/methods/oaa.md``, linked from docs/ as ``methods/oaa.md``) are preceded by a
# ``/`` and are not matched; a bare ``oaa.md`` is.
SPEC_NAMES = r'(?:oaa|gain|edam|vwl|anchors|install-notes)'
SPEC_PATTERNS = {
    'spec file': re.compile(r'(?<![\w/.-])' + SPEC_NAMES + r'\.md\b'),
    'specs folder': re.compile(r'\bspecs/'),
    'spec tag': re.compile(r'\bspec\s*(?:[A-Z]\d|§|\d|``|`|\w+\.md)'),
    'the spec': re.compile(
        r'\b(?:the|project|project\'s|internal|our)\s+spec(?:ification)?s?\b', re.I),
    'ambiguity tag': re.compile(r'(?:§\s*6\s*|[(,;]\s*)A\d{1,2}\b(?!\s*=)'),
    'test-idea number': re.compile(r'\b(?:ideas?|items?)\s+\d+\s*(?:[-–]\s*\d+)?\b'),
    'issue acceptance': re.compile(r'\bissue\s+\d+\s+acceptance\b', re.I),
}

# citation keys of the OAA papers and code (defined in docs/methods/oaa.md)
CITATION_KEYS = ('[T]', '[I]', '[C]')

# (b) Markdown paths: a token ending in ``.md`` (optionally with ``#anchor``).
MD_PATH = re.compile(r'(?<![\w./*-])((?:\.\.?/)*[\w][\w./-]*?\.md)(#[\w-]+)?\b')
# Markdown files the tools write into work dirs (not pages of this repository)
GENERATED_MD = ('leaderboard.md', )
SECTION = re.compile(r"""\s*,?\s*section\s+['"‘“]([^'"’”]+)['"’”]""")
URL = re.compile(r'[a-z]+://\S+')


def _scanned_files():
    for name in SCANNED_FILES:
        path = osp.join(REPO, name)
        if osp.isfile(path):
            yield path
    for top in SCANNED_DIRS:
        for root, dirs, files in os.walk(osp.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs
                             if d != '__pycache__' and not d.startswith('.'))
            for name in sorted(files):
                path = osp.join(root, name)
                if name.endswith(SUFFIXES) and osp.abspath(path) != SELF:
                    yield path


def _lines(path):
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, line


def _rel(path):
    return osp.relpath(path, REPO)


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def _headings(md_file):
    titles = []
    in_fence = False
    for _, line in _lines(md_file):
        if line.startswith('```'):
            in_fence = not in_fence
        elif not in_fence and re.match(r'#{1,6}\s', line):
            titles.append(line.lstrip('#').strip())
    return titles


def _resolve(path, md):
    """The repository file ``md`` (mentioned in ``path``) names, or None.

    A path is looked up relative to the mentioning file (how Markdown links and
    ``cam_format.md`` inside docs/ work) and to the repository root; a bare file name
    also under docs/.
    """
    candidates = [osp.join(osp.dirname(path), md), osp.join(REPO, md)]
    if '/' not in md:
        candidates.append(osp.join(REPO, 'docs', md))
    for cand in candidates:
        cand = osp.normpath(cand)
        if cand.startswith(REPO + os.sep) and osp.isfile(cand):
            return cand
    return None


def find_spec_references():
    found = []
    for path in _scanned_files():
        for lineno, line in _lines(path):
            for what, pattern in SPEC_PATTERNS.items():
                for m in pattern.finditer(line):
                    found.append(f'{_rel(path)}:{lineno}: {what}: {m.group(0)!r}')
    return found


def find_broken_md_references():
    broken = []
    for path in _scanned_files():
        for lineno, line in _lines(path):
            line = URL.sub(' ', line)
            for m in MD_PATH.finditer(line):
                md, anchor = m.group(1), m.group(2)
                if osp.basename(md) in GENERATED_MD:
                    continue
                where = f'{_rel(path)}:{lineno}: {m.group(0)!r}'
                target = _resolve(path, md)
                if target is None:
                    broken.append(f'{where}: no such file')
                    continue
                titles = _headings(target)
                if anchor and anchor[1:] not in {_slug(t) for t in titles}:
                    broken.append(f'{where}: no heading with this anchor')
                sec = SECTION.match(line, m.end())
                if sec and not any(t.lower().startswith(sec.group(1).lower())
                                   for t in titles):
                    broken.append(f'{where}: no section {sec.group(1)!r}')
    return broken


def test_no_reference_to_internal_specs():
    found = find_spec_references()
    assert not found, (
        'references to documents users do not have (cite the paper, the official '
        'code or a docs/ page instead):\n' + '\n'.join(found))


def test_markdown_references_exist():
    broken = find_broken_md_references()
    assert not broken, 'references to missing Markdown files or sections:\n' + \
        '\n'.join(broken)


def test_citation_keys_are_defined():
    """The OAA keys [T], [I], [C] are defined in docs/methods/oaa.md, section
    'References', and every file that uses them points there."""
    page = osp.join(REPO, 'docs', 'methods', 'oaa.md')
    text = open(page, encoding='utf-8').read()
    assert '\n## References\n' in text
    references = text.split('\n## References\n', 1)[1]
    for key in CITATION_KEYS:
        assert f'**{key}**' in references, f'{key} is not defined in {_rel(page)}'
    key_re = re.compile('|'.join(re.escape(k) for k in CITATION_KEYS))
    missing = []
    for path in _scanned_files():
        if osp.abspath(path) == osp.abspath(page):
            continue
        content = open(path, encoding='utf-8').read()
        if key_re.search(content) and 'methods/oaa.md' not in content:
            missing.append(_rel(path))
    assert not missing, ('files citing [T] / [I] / [C] without pointing to '
                         'docs/methods/oaa.md:\n' + '\n'.join(missing))


@pytest.mark.parametrize('text, hit', [
    ('(oaa.md §2.4)', True),
    ('see ``vwl.md`` §2.13', True),
    ('(spec A11)', True),
    ('spec §7 24-29', True),
    ('in the project spec', True),
    ('../shared/specs/*.md', True),
    ('(§2.4, A12)', True),
    ('§7 ideas 19-23', True),
    ('docs/methods/oaa.md', False),
    ('[methods/oaa.md](methods/oaa.md)', False),
    ('spec = importlib.util.spec_from_file_location(name, path)', False),
    ('mock.Mock(spec=EpochBasedTrainLoop)', False),
    ('OAA [T] §3.3, Alg. 1; Tab. 8', False),
    ('A1 = attention(F)', False),
])
def test_spec_patterns(text, hit):
    assert any(p.search(text) for p in SPEC_PATTERNS.values()) is hit


def test_md_path_pattern():
    text = ('docs/cam_format.md, [x](datasets.md#classification-metrics), '
            'https://example.org/a.md, methods/oaa.md')
    assert [m.group(1) for m in MD_PATH.finditer(URL.sub(' ', text))] == [
        'docs/cam_format.md', 'datasets.md', 'methods/oaa.md']
    assert _slug('Classification metrics (`ClsMetric`)') == \
        'classification-metrics-clsmetric'
