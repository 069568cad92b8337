"""metadata's pure parts: the one-line reason of a driver error, and the SQL files it runs."""

from __future__ import annotations

from importlib.resources import files

import psycopg2

from patroni_citus import drill, metadata


def test_first_line_keeps_only_the_reason() -> None:
    error = psycopg2.OperationalError('connection to server at "10.0.0.1", port 5432 failed\nDETAIL:  x\n')
    assert metadata.first_line(error) == 'connection to server at "10.0.0.1", port 5432 failed'


def test_first_line_of_an_error_without_text() -> None:
    assert metadata.first_line(psycopg2.OperationalError("  ")) == "OperationalError"
    assert metadata.first_line(psycopg2.OperationalError(""), "connection failed") == "connection failed"


def test_metadata_error_keeps_its_reason_apart() -> None:
    error = metadata.MetadataError("commit", "server closed the connection unexpectedly")
    assert str(error) == "commit: server closed the connection unexpectedly"
    assert error.reason == "server closed the connection unexpectedly"


def test_every_drill_statement_names_the_drill_table() -> None:
    sql_dir = files("patroni_citus").joinpath("sql")
    names = sorted(p.name for p in sql_dir.iterdir() if p.name.startswith("drill_"))
    assert len(names) == 6, names
    for name in names:
        assert drill.TABLE in metadata.query(name.removesuffix(".sql")), name
