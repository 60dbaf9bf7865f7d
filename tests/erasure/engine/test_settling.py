"""Recording each step's outcome and settling its request, as the operators' API shows them after a clean run."""
from urllib.parse import urlsplit

import pytest

from tests.erasure.helpers_optout import joined_person, submit_optout


@pytest.mark.demo_behaviours("iss", "discovery", "ends_grant", "resource")
def test_every_step_of_a_clean_run_goes_through_at_its_first_attempt(client, make_person, login, csrf_post,
                                                                    operator_headers, worker, demo_network):
    joined_person(client, make_person, login, csrf_post, account="1002")
    status_path = submit_optout(client, csrf_post, "all")
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]

    worker.drain()

    shown = client.get(f"/api/v1/optouts/{request_id}", headers=operator_headers).json
    assert shown["status"] == "completed" and shown["completed_at"] is not None
    # Nothing failed along the way: no step was retried, so none shows an error or a second attempt.
    assert [(s["kind"], s["status"], s["attempts"], s["last_error"]) for s in shown["steps"]] == [
        (s["kind"], "done", 1, None) for s in shown["steps"]]
