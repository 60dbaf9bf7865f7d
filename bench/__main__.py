"""`python -m bench`: print the table."""
from bench.run import main

raise SystemExit(main())
