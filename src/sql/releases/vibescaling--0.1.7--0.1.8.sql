-- vibescaling 0.1.7 -> 0.1.8: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.8'" to load this file. \quit
