"""``python -m miniclip.data grid OUT.png`` / ``python -m miniclip.data export OUT_DIR --n N``: see shapes.py."""

from .shapes import main

main()
