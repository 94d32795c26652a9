"""python -m tinyseg ...: the command line (cli.py). A Ctrl-C while it starts ends it quietly too."""

import sys

try:
    from tinyseg.cli import main
except KeyboardInterrupt:              # during the imports, before main() can say anything
    sys.exit(130)

sys.exit(main())
