"""The `flask` commands operators use: users, tokens, migrations."""
from sqlalchemy import select

from app.models import ApiToken, User
from app.security import token_hash


def run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_users_create_prints_the_id(app, session):
    result = run(app, "users", "create", "--email", "Op@Example.org", "--role", "operator",
                 "--password", "long enough password")
    assert result.exit_code == 0, result.output
    user = session.get(User, result.output.strip())
    assert user.email == "op@example.org" and user.role == "operator"


def test_users_create_prompts_for_a_password(app, session):
    result = run(app, "users", "create", "--email", "aud@example.org", "--role", "auditor",
                 input="long enough password\nlong enough password\n")
    assert result.exit_code == 0, result.output
    assert session.scalar(select(User).where(User.email == "aud@example.org")).role == "auditor"


def test_users_create_refuses_bad_input_clearly(app):
    args = ["users", "create", "--role", "operator", "--password", "long enough password", "--email"]
    assert run(app, *args, "a@example.org").exit_code == 0
    again = run(app, *args, "A@example.org")
    assert again.exit_code == 2 and "email exists" in again.output
    assert run(app, *args, "not an email").exit_code == 2
    assert run(app, "users", "create", "--email", "b@example.org", "--role", "king",
               "--password", "long enough password").exit_code == 2
    short = run(app, "users", "create", "--email", "c@example.org", "--role", "auditor", "--password", "short")
    assert short.exit_code == 2 and "10 characters" in short.output


def test_tokens_are_printed_once_and_stored_hashed(app, session):
    result = run(app, "tokens", "create", "--role", "service", "--name", "scoring pipeline")
    token = result.output.strip()
    assert result.exit_code == 0 and token.startswith("ows_")
    stored = session.scalar(select(ApiToken))
    assert stored.token_hash == token_hash(token) and stored.role == "service"
    listing = run(app, "tokens", "list").output
    assert "scoring pipeline" in listing and token not in listing


def test_a_revoked_token_no_longer_works(app, api_token, session):
    token = api_token("service")
    token_id = session.scalar(select(ApiToken.id))
    check = {"checks": [{"network": "demo", "account": "1", "purpose": "scoring"}]}
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/consent/check", json=check, headers=auth).status_code == 200
    assert run(app, "tokens", "revoke", token_id).exit_code == 0
    response = client.post("/api/v1/consent/check", json=check, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert run(app, "tokens", "revoke", token_id).exit_code == 2


def test_a_features_keys_command_is_audited_with_its_target(app, session):
    import click

    from app.cli import keys_cli, register_key_command
    from app.models import AuditEvent

    @click.command("test-rotate")
    def rotate() -> None:
        click.echo("rotated")

    register_key_command(app, rotate, target=lambda session_: "key-7")
    try:
        result = run(app, "keys", "test-rotate")
    finally:
        keys_cli.commands.pop("test-rotate")  # the group is shared by every app in this process
    assert result.exit_code == 0 and result.output == "rotated\n", result.output
    event = session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()))
    assert (event.action, event.target, event.actor_kind) == ("keys_test_rotate", "key-7", "system")
