"""`python app.py` is `roadwatch serve`."""

import sys

from roadwatch.cli import main

if __name__ == "__main__":
    main(["serve", *sys.argv[1:]], prog_name="roadwatch")
