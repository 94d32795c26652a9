import sys

from tinyseg.cli import main

sys.exit(main())
