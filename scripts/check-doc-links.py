#!/usr/bin/env python3
"""Checks the relative links of the repository's Markdown files.

    scripts/check-doc-links.py          (from anywhere; exit status 1 on a broken link)

For every [text](target) in a tracked *.md file whose target is not a URL
(http:, https:, mailto:), the target file or directory must exist, and a
#fragment must name a heading of the target Markdown file, slugged as
GitHub does (lower case, punctuation dropped, spaces to hyphens, -1, -2
for repeats). Links inside code blocks and code spans are ignored.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def markdown_files():
    out = subprocess.run(['git', '-C', ROOT, 'ls-files', '*.md'], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def prose_lines(text):
    """The lines outside fenced code blocks, with code spans blanked."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith('```'):
            fenced = not fenced
            continue
        if not fenced:
            yield re.sub(r'`[^`]*`', '``', line)


def slug(heading):
    s = heading.strip().lower().replace('`', '')
    s = re.sub(r'[^\w\- ]', '', s)
    return s.replace(' ', '-')


def anchors(path):
    seen = {}
    result = set()
    fenced = False
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.lstrip().startswith('```'):
                fenced = not fenced
                continue
            m = None if fenced else re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                result.add(base if n == 0 else f'{base}-{n}')
    return result


def main():
    broken = 0
    checked = 0
    for rel in markdown_files():
        src = os.path.join(ROOT, rel)
        with open(src, encoding='utf-8') as f:
            text = f.read()
        for line in prose_lines(text):
            for target in LINK.findall(line):
                if re.match(r'^(https?|mailto):', target):
                    continue
                checked += 1
                path, _, fragment = target.partition('#')
                dest = os.path.normpath(os.path.join(os.path.dirname(src), path)) if path else src
                if not os.path.exists(dest):
                    print(f'{rel}: {target}: no such file')
                    broken += 1
                elif fragment and dest.endswith('.md') and fragment not in anchors(dest):
                    print(f'{rel}: {target}: no heading #{fragment} in {os.path.relpath(dest, ROOT)}')
                    broken += 1
    print(f'links: {checked - broken} ok, {broken} broken')
    return 1 if broken else 0


if __name__ == '__main__':
    sys.exit(main())
