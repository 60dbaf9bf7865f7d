"""The API's blueprint: flask-smorest's, reading JSON bodies with a parser that refuses a body nested too deeply.

Python's JSON decoder recurses once per level of nesting and raises RecursionError past about a thousand:
"[" repeated 100,000 times is a few bytes that any caller may send to any JSON route. It is malformed input,
answered like any other (400, "Invalid JSON body."), here, once, for every route that takes a body.
"""
from __future__ import annotations

import json
import typing

import flask
import flask_smorest
from webargs.flaskparser import FlaskParser


class JsonBodyParser(FlaskParser):
    def _raw_load_json(self, req: flask.Request) -> typing.Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            # Through webargs' own path for a body that is not JSON: the same 400 and the same words.
            raise json.JSONDecodeError("nested too deeply", "(the body)", 0) from None


class Blueprint(flask_smorest.Blueprint):
    """Use this, not flask_smorest.Blueprint, for every API blueprint."""

    ARGUMENTS_PARSER = JsonBodyParser()
