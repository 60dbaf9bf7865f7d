"""`python -m erasure.verify FILE --jwks FILE [--log-key KEY]`: the offline verifier's entry point.

The verifier itself is the folder `erasure/verifier/`, which imports nothing but the standard library and
`cryptography`: copy that folder alone and run `python -m verifier FILE --jwks FILE` to the same effect.
"""
import sys

from erasure.verifier.verify import main

if __name__ == "__main__":
    sys.exit(main())
