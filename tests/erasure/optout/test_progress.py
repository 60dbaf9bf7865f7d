"""The status page's JSON twin: the same steps, grouped as the page shows them, behind the same k."""
from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from tests.erasure.helpers_optout import joined_person, request_steps, submit_optout


def progress_of(client, status_path: str, **how):
    url = urlsplit(status_path)
    k = parse_qs(url.query)["k"][0]
    if how.get("in_query"):
        return client.get(f"{url.path}/progress?k={k}"), k
    return client.get(f"{url.path}/progress", headers={"X-Status-Key": how.get("key", k)}), k


def test_the_steps_are_grouped_as_a_person_cares_about_them(app, client, make_person, login, csrf_post, worker,
                                                            caplog):
    joined_person(client, make_person, login, csrf_post, account="1002")
    status_path = submit_optout(client, csrf_post, "all")
    caplog.set_level(logging.DEBUG)
    client.get(status_path)
    answer, k = progress_of(client, status_path)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    steps = request_steps(app, urlsplit(status_path).path.rsplit("/", 1)[1])
    body = answer.json
    assert body["progress"] == f"0 of {len(steps)} steps done" and body["completed"] is False
    assert [g["title"] for g in body["groups"]] == [
        "Revoke our access at Demo Social", "Delete your data",
        "Once access is revoked everywhere: delete our own records of you",
        "Check every store again, and delete anything that came in while access was being revoked",
        "Sign your deletion receipt", "Other steps"]
    assert sum(len(g["steps"]) for g in body["groups"]) == len(steps)
    assert [g["folded"] for g in body["groups"]] == [False, True, True, False, False, True]
    assert k not in caplog.text  # neither the page nor its JSON puts the capability in a log line

    worker.drain()
    body = progress_of(client, status_path, in_query=True)[0].json
    assert body["completed"] is True and body["receipt_id"] and body["state"] == "Done."
    assert body["progress"] == f"{len(steps)} of {len(steps)} steps done"
    assert {g["status"] for g in body["groups"]} == {"done"}
    deleted = next(g for g in body["groups"] if g["key"] == "delete")
    assert deleted["outcome"].startswith("Deleted 1 profile entry, 20 posts") and "Ownstory" not in deleted["outcome"]
    later = next(g for g in body["groups"] if g["key"] == "after-revocation")
    assert later["outcome"] == "Ownstory's own records of you are deleted."
    assert next(g for g in body["groups"] if g["key"] == "verify")["outcome"] == "Nothing is left."
    page = client.get(status_path).get_data(as_text=True)
    assert "20 posts" in page and f"{len(steps)} of {len(steps)} steps done" in page


def test_a_wrong_key_or_address_is_a_plain_404(client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1003")
    status_path = submit_optout(client, csrf_post, "demo")
    path = urlsplit(status_path).path
    for answer in (progress_of(client, status_path, key="not-the-key")[0], client.get(f"{path}/progress"),
                   client.get("/optout/not-a-uuid/progress", headers={"X-Status-Key": "x"})):
        assert answer.status_code == 404 and answer.json["error"] == "not_found"
        assert "Check that the link is complete" in answer.json["message"]
