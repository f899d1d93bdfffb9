-- vibescaling 0.1.4 -> 0.1.5: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.5'" to load this file. \quit
