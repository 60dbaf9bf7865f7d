"""The offline receipt verifier. Standard library and `cryptography` only, so an auditor can copy this folder."""
