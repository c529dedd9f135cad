"""``python -m darknet_magics``: the command-line face (see cli.py)."""
import sys

from .cli import main

sys.exit(main())
