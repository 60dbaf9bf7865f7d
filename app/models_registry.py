"""Imports every module that defines tables, so Base.metadata knows them all (migrations, tests)."""


def import_all_models() -> None:
    import app.models  # noqa: F401
    import consent.models  # noqa: F401
    import erasure.agents.models  # noqa: F401
    import erasure.models  # noqa: F401
