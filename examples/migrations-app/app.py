"""notes-demo v1: a Flask app whose data lives in a database both colours share.

Routes: ``/`` (hello), ``/healthz`` (answers once the database does), ``/version``, ``/schema``
(this release's migration head against the database's, see ``db.py``), ``GET /notes`` and
``POST /notes`` (``{"text": ...}``), ``DELETE /notes/<id>``. The schema belongs to Alembic (``migrations/``): bgci runs
``alembic upgrade head`` as the ``pre_switch`` hook, in the new release, before traffic moves.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response, jsonify, request
from sqlalchemy import text

from db import engine, schema_state

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text(encoding="utf-8").strip()

app = Flask(__name__)


@app.get("/")
def index() -> Response:
    return Response(f"Hello from notes-demo {VERSION}\n", mimetype="text/plain")


@app.get("/healthz")
def healthz() -> Response:
    with engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return Response("ok\n", mimetype="text/plain")


@app.get("/version")
def version() -> Response:
    return jsonify(version=VERSION, color=os.environ.get("BGCI_COLOR") or None)


@app.get("/schema")
def schema() -> Response:
    return jsonify(schema_state())


@app.get("/notes")
def list_notes() -> Response:
    # Columns named, never SELECT *: a column a later release adds changes nothing here.
    with engine().connect() as conn:
        rows = conn.execute(text("SELECT id, text FROM notes ORDER BY id")).all()
    return jsonify([{"id": row.id, "text": row.text} for row in rows])


@app.post("/notes")
def add_note() -> tuple[Response, int]:
    body = request.get_json(silent=True) or {}
    if not isinstance(body.get("text"), str) or not body["text"]:
        return jsonify(error='expected JSON {"text": "..."}'), 400
    with engine().begin() as conn:
        new_id = conn.execute(text("INSERT INTO notes (text) VALUES (:text) RETURNING id"),
                              {"text": body["text"]}).scalar_one()
    return jsonify(id=new_id, text=body["text"]), 201


@app.delete("/notes/<int:note_id>")
def delete_note(note_id: int) -> tuple[Response, int]:
    # the smoke suite removes the note it wrote: it runs against the production database
    with engine().begin() as conn:
        deleted = conn.execute(text("DELETE FROM notes WHERE id = :id"), {"id": note_id}).rowcount
    return (Response(status=204), 204) if deleted else (jsonify(error="no such note"), 404)
