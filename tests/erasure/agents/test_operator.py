"""Operators see agents' deletions in the queue, with the same deadlines, and can list one agent's alone."""
from __future__ import annotations

import re


def _listed(client, **query) -> list[str]:
    response = client.get("/operator", query_string=query)
    assert response.status_code == 200
    return re.findall(r'aria-label="Request ([0-9a-f-]{36})"', response.get_data(as_text=True))


def test_the_queue_filters_by_agent(served, signed_in):
    first, second = served.register("FIRST"), served.register("SECOND")
    first.setup()
    second.setup()
    mine = first.exercise("deletion", email="otto@elsewhere.example", email_verified=True).json()
    theirs = second.exercise("deletion", email="priya@elsewhere.example", email_verified=True).json()
    assert mine["status"] == theirs["status"] == "in_progress"

    client = signed_in("operator")
    everything = _listed(client)
    assert len(everything) == 2
    only_first = _listed(client, agent="FIRST")
    assert len(only_first) == 1 and only_first != _listed(client, agent="SECOND")
    page = client.get("/operator", query_string={"agent": "FIRST"}).get_data(as_text=True)
    assert "(through an agent)" in page and "Agent FIRST (FIRST)" in page
    assert "otto@" not in page and "priya@" not in page
    assert client.get("/operator", query_string={"agent": "NOBODY"}).status_code == 400


def test_the_api_lists_one_agents_deletions(served):
    first, second = served.register("FIRST"), served.register("SECOND")
    first.setup()
    second.setup()
    mine = first.exercise("deletion", email="otto@elsewhere.example", email_verified=True).json()
    second.exercise("deletion", email="priya@elsewhere.example", email_verified=True)
    made = served.cli("tokens", "create", "--role", "operator", "--name", "on call")
    client, headers = served.app.test_client(), {"Authorization": f"Bearer {made.output.strip()}"}

    def listed(**query):
        response = client.get("/api/v1/optouts", query_string=query, headers=headers)
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    assert len(listed()) == 2
    only_first = listed(agent="FIRST")
    assert len(only_first) == 1 and only_first != listed(agent="SECOND")
    assert listed(agent="FIRST", status="completed") == []  # the filters combine
    answer = client.get("/api/v1/optouts", query_string={"agent": "NOBODY"}, headers=headers)
    assert answer.status_code == 400 and answer.get_json()["error"]["message"] == "No authorized agent has that id."
    assert mine["status"] == "in_progress"
