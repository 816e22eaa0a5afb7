"""``python -m microsam_fiji.cli``: the ``microsam-fiji`` program (a venv without its script on PATH)."""
import sys

from microsam_fiji.cli import main

sys.exit(main())
