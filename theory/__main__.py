"""`python -m theory` is `python -m theory.check`."""
from theory.check import main

raise SystemExit(main())
