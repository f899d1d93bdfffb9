#!/usr/bin/env python3
"""Command-line entry point of the TikTok simulator; the code is the package sim/tiktok/.

    python3 sim/tiktok_sim.py --port 18443 [--host 127.0.0.1] [--latency-ms 0]
        [--processing-seconds 3] [--no-rate-limits] [--quiet] [--verbose]

Scripts, tests and docs start the simulator by this path, so it stays; see sim/README.md.
"""

import os
import sys

# Run as a script, Python puts sim/ on the path; the package is imported as sim.tiktok,
# so the repository's root goes first.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sim.tiktok.server import main  # noqa: E402 (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
