"""`python -m invrob` is the `invrob` command."""
from invrob.cli import main

raise SystemExit(main())
