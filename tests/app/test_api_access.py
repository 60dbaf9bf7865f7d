"""Who may call which /api/v1 endpoint: the role matrix of CONTRACT 9, and bearer-only access."""
import pytest

CHECK = {"checks": [{"network": "demo", "account": "1001", "purpose": "scoring"}]}

# (method, path, body, the one role allowed; None: anyone)
ENDPOINTS = [
    ("POST", "/api/v1/consent/check", CHECK, "service"),
    ("GET", "/api/v1/openapi.json", None, None),
]
ROLES = ["anonymous", "person", "operator", "auditor", "service"]


@pytest.fixture
def caller(app, api_token, make_person, login):
    def make(role: str):
        client = app.test_client()
        headers = {}
        if role == "person":
            login(client, make_person())
        elif role != "anonymous":
            headers["Authorization"] = f"Bearer {api_token(role)}"
        return client, headers

    return make


@pytest.mark.parametrize("method, path, body, allowed", ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(caller, role, method, path, body, allowed):
    client, headers = caller(role)
    response = client.open(path, method=method, json=body, headers=headers)
    if allowed is None or role == allowed:
        assert response.status_code == 200, response.get_data(as_text=True)
    elif role == "anonymous":
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthenticated"
    else:
        assert response.status_code == 403
        assert response.json["error"]["code"] == "forbidden"


def test_the_api_never_sets_a_cookie(caller):
    client, headers = caller("service")
    response = client.post("/api/v1/consent/check", json=CHECK, headers=headers)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer ows_made_up", "Basic dXNlcjpwYXNz", "ows_x"])
def test_bad_bearer_tokens_get_401(client, header):
    response = client.post("/api/v1/consent/check", json=CHECK, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json == {"error": {"code": "unauthenticated", "message": "A valid bearer token is required."}}


def test_unknown_api_paths_answer_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_wrong_method_answers_405_with_allow(client):
    response = client.get("/api/v1/consent/check")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.json["error"]["code"] == "method_not_allowed"


def test_an_oversized_body_is_refused_with_413(caller):
    client, headers = caller("service")
    response = client.post("/api/v1/consent/check", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                           headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"


def test_a_missing_page_is_a_friendly_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Back to the start page" in response.get_data(as_text=True)
