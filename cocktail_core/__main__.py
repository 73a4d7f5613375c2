import sys

from cocktail_core.cli import main

sys.exit(main())
