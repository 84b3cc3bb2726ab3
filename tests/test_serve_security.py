"""Who may use promptlab serve: token off loopback, Host checked on loopback, changes only
with the token or from the viewer's own pages, nothing at all when read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_support import TOKEN, copy_db, serving, template_db

from promptlab.cli import main

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    with template_db(tmp_path_factory.mktemp("serve-security")) as (_, db, run_id):
        yield db, run_id


@pytest.fixture
def db(template: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    return copy_db(template[0], tmp_path / "r.db"), template[1]


def test_a_non_loopback_bind_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--db", "x.db"]) == 2
    assert "needs --token" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--token", "short"]) == 2


def test_a_mistyped_db_is_refused_not_served_empty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo.db"
    assert main(["serve", "--db", str(missing), "--port", "1"]) == 2
    assert f"no database at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_experiments_that_are_not_there_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "new.db"
    assert main(["serve", "--db", str(db), "--experiments", str(tmp_path / "nope")]) == 2
    assert "no config.yaml there" in capsys.readouterr().err and not db.exists()


def test_with_experiments_a_new_database_is_made_for_the_runs_it_launches(
        tmp_path: Path) -> None:
    from promptlab.serve import ServeSettings, create_app

    fresh = tmp_path / "new.db"
    create_app(ServeSettings(db=str(fresh), experiments=tmp_path, token=TOKEN))
    assert fresh.exists()


def test_off_loopback_every_request_needs_the_token(db: tuple[Path, str]) -> None:
    path, run_id = db
    with serving(path, host="0.0.0.0") as server, server.client() as c:
        assert c.get("/api/runs").status_code == 401
        assert c.get(f"/runs/{run_id}").status_code == 401
        assert c.get("/api/runs", headers={"Authorization": "Bearer wrong-token-xx"}
                     ).status_code == 401
        assert c.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}
                     ).status_code == 200
        login = c.get(f"/runs/{run_id}?token={TOKEN}", follow_redirects=True)  # cookie set
        assert login.status_code == 200 and "token" not in str(login.url)
        assert c.get("/").status_code == 200  # the cookie now
        assert c.get("/static/app.css").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8321", "127.0.0.1.nip.io"])
def test_a_foreign_host_header_is_refused_on_loopback(db: tuple[Path, str], host: str) -> None:
    path, _ = db
    with serving(path) as server, server.client() as c:
        r = c.get("/api/runs", headers={"Host": host})
        assert r.status_code == 421 and "not this server" in r.json()["error"]
        assert c.get("/api/runs", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_changes_need_the_token_or_the_same_origin(db: tuple[Path, str]) -> None:
    path, run_id = db
    with serving(path) as server, server.client() as c:
        rating = f"/api/runs/{run_id}/trials/0/rating"
        assert c.delete(f"/api/runs/{run_id}").status_code == 403  # no token, no origin
        cross = c.delete(f"/api/runs/{run_id}", headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
        site = c.delete(f"/api/runs/{run_id}", headers={"Sec-Fetch-Site": "cross-site"})
        assert site.status_code == 403
        form = c.post("/api/runs", content="overrides=x",
                      headers={"Origin": "null",
                               "Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 403
        same = {"Origin": server.url}
        assert c.put(rating, content="rating=up", headers={
            **same, "Content-Type": "text/plain"}).status_code == 415
        assert c.put(rating, json={"rating": "up"}, headers=same).status_code == 200
        token = {"Authorization": f"Bearer {TOKEN}"}
        assert c.put(rating, json={"rating": "down"}, headers=token).status_code == 200
        assert c.put(rating, json={"rating": "down"}, headers={
            "Authorization": "Bearer nope-nope-nope"}).status_code == 403
        assert c.get(f"/api/runs/{run_id}").status_code == 200  # still there
        assert c.delete(f"/api/runs/{run_id}", headers=token).status_code == 200


def test_read_only_refuses_every_change(db: tuple[Path, str]) -> None:
    path, run_id = db
    token = {"Authorization": f"Bearer {TOKEN}"}
    with serving(path, read_only=True) as server, server.client(headers=token) as c:
        assert c.delete(f"/api/runs/{run_id}").status_code == 403
        r = c.put(f"/api/runs/{run_id}/trials/0/rating", json={"rating": "up"})
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        assert c.post("/api/runs", json={"overrides": []}).status_code == 403
        page = c.get(f"/runs/{run_id}")
        assert page.status_code == 200 and 'data-rate="up"' not in page.text


@pytest.mark.parametrize("path", ["/static/../pyproject.toml", "/static/%2e%2e/app.py",
                                  "/static/..%2f..%2fpyproject.toml", "/static/app.py",
                                  "/static/templates%2fbase.html.j2", "/static/"])
def test_static_files_are_a_fixed_list(db: tuple[Path, str], path: str) -> None:
    with serving(db[0]) as server, server.client() as c:
        r = c.get(path)
        assert r.status_code == 404 and "import" not in r.text and "[project]" not in r.text


def test_every_response_carries_a_strict_csp(db: tuple[Path, str]) -> None:
    with serving(db[0]) as server, server.client() as c:
        for path in ("/", f"/runs/{db[1]}", "/api/runs", "/nope"):
            csp = c.get(path).headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
