#!/usr/bin/env python3
"""Drafts an upgrade script between two install scripts of vibescaling.

    scripts/draft-upgrade.py OLD.sql NEW.sql > draft.sql

Every function or procedure that is new or whose definition changed is
written again as CREATE OR REPLACE, with the REVOKE/GRANT/COMMENT statements
that follow it in NEW. Every other statement of NEW that OLD does not have
word for word (tables, indexes, policies, triggers, DO blocks), and every
statement of OLD that NEW no longer has, is listed in a comment block at the
top: those need a hand-written ALTER or DROP. The draft is a starting
point: a person finishes it, test/upgrade/run.sh proves it (the upgraded
schema must equal a fresh install's), and it is then frozen in
src/sql/releases.
"""
import re
import sys


def statements(sql):
    """Splits a SQL script into statements (aware of quotes, $tags$ and comments)."""
    out, cur, i, n = [], [], 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith('--', i):
            j = sql.find('\n', i)
            j = n if j < 0 else j + 1
            cur.append(sql[i:j]); i = j; continue
        if c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and sql.startswith("''", j):
                    j += 2; continue
                if sql[j] == "'":
                    break
                j += 1
            cur.append(sql[i:j + 1]); i = j + 1; continue
        m = re.match(r'\$[A-Za-z_]*\$', sql[i:])
        if m:
            tag = m.group(0)
            j = sql.find(tag, i + len(tag))
            j = n if j < 0 else j + len(tag)
            cur.append(sql[i:j]); i = j; continue
        if c == ';':
            cur.append(';'); out.append(''.join(cur)); cur = []; i += 1; continue
        cur.append(c); i += 1
    rest = ''.join(cur)
    if rest.strip():
        out.append(rest)
    return out


def strip_comments(stmt):
    """The statement without its leading comment, psql meta-command and blank lines."""
    lines = stmt.strip('\n').split('\n')
    while lines and (lines[0].strip().startswith(('--', '\\')) or not lines[0].strip()):
        lines.pop(0)
    return '\n'.join(lines).strip()


def routine_key(stmt):
    """'schema.name(args)' of a CREATE FUNCTION/PROCEDURE statement, else None."""
    m = re.match(r'CREATE (?:OR REPLACE )?(FUNCTION|PROCEDURE)\s+([\w.]+)\s*\(', stmt)
    if not m:
        return None
    depth, i = 1, m.end()
    while depth and i < len(stmt):
        depth += {'(': 1, ')': -1}.get(stmt[i], 0)
        i += 1
    return m.group(2) + stmt[m.end() - 1:i]


def about_routine(stmt):
    """The routine name a REVOKE/GRANT/COMMENT ON FUNCTION statement is about, else None."""
    m = re.search(r'ON (?:FUNCTION|PROCEDURE)\s+([\w.]+)\s*\(', stmt)
    return m.group(1) if m and re.match(r'(REVOKE|GRANT|COMMENT)\b', stmt) else None


def main():
    old = [strip_comments(s) for s in statements(open(sys.argv[1]).read())]
    new = [strip_comments(s) for s in statements(open(sys.argv[2]).read())]
    old = [s for s in old if s]
    new_all = [s for s in new if s]
    old_set = set(old)
    old_routines = {routine_key(s): s for s in old if routine_key(s)}
    new_routines = {routine_key(s): s for s in new_all if routine_key(s)}

    changed_names = set()
    body = []
    by_hand = []
    for s in new_all:
        key = routine_key(s)
        if key:
            if old_routines.get(key) != s:
                changed_names.add(key.split('(')[0])
                body.append(re.sub(r'^CREATE (FUNCTION|PROCEDURE)', r'CREATE OR REPLACE \1', s) + '\n')
            continue
        target = about_routine(s)
        if target:
            if target in changed_names and s not in old_set:
                body.append(s + '\n')
            continue
        if s not in old_set:
            by_hand.append('NEW ONLY: ' + s)
    for key, s in old_routines.items():
        if key not in new_routines:
            by_hand.append('DROPPED ROUTINE: ' + key)
    new_set = set(new_all)
    for s in old:
        if not routine_key(s) and not about_routine(s) and s not in new_set:
            by_hand.append('OLD ONLY: ' + s)

    print('-- DRAFT (scripts/draft-upgrade.py): statements to write by hand:')
    for s in by_hand:
        print('--   ' + s.replace('\n', '\n--   '))
    print()
    print('\n'.join(body))


if __name__ == '__main__':
    main()
