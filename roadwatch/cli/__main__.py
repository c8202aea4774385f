"""`python -m roadwatch.cli` is `roadwatch`."""

from . import main

main(prog_name="roadwatch")
