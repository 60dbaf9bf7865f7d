"""/livez and /readyz, as a load balancer sees them."""


def test_livez(client):
    assert client.get("/livez").json == {"status": "ok"}


def test_readyz_on_a_migrated_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": True, "migrations": True, "keys": True}


def test_readyz_says_not_ready_before_migrations(make_app, tmp_path):
    app = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["migrations"] is False


def test_readyz_says_not_ready_when_the_database_is_gone(make_app, tmp_path):
    app = make_app({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] is False


def test_readyz_says_not_ready_when_the_signing_keys_cannot_be_opened(app, make_app, test_environ, sessions, vault):
    from cryptography.fernet import Fernet

    from app.db import utcnow
    from erasure.receipts import keys

    with sessions() as db:
        keys.current(db, vault, "receipt", utcnow())
        db.commit()
    assert app.test_client().get("/readyz").json["checks"]["keys"] is True
    other = make_app(token_keys=Fernet.generate_key().decode())  # someone changed OWNSTORY_TOKEN_KEYS
    response = other.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["checks"]["keys"] is False


def test_a_features_readiness_check_is_answered_under_its_name(make_app, tmp_path):
    from app.health import register_check

    ready = make_app()
    register_check(ready, "spool", lambda session: False)
    response = ready.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["checks"]["spool"] is False
    assert response.json["checks"]["keys"] is True  # erasure's own, registered by the factory

    unmigrated = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
    asked = []
    register_check(unmigrated, "spool", lambda session: asked.append(session) or True)
    assert unmigrated.test_client().get("/readyz").json["checks"]["spool"] is False
    assert asked == []  # not run before the schema is there
