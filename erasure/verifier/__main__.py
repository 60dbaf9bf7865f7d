"""`python -m verifier FILE --jwks FILE [--log-key KEY]`, for an auditor who copied this folder alone."""
import sys

from .verify import main

sys.exit(main())
