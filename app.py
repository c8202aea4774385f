"""`python app.py` is `roadwatch serve`."""

import sys

from roadwatch.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
