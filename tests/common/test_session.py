"""The Redis session store and the shared web plumbing, against a real Redis.

A tiny app built with :func:`common.web.create_base_app` stands in for any
of the suite's apps: the point is the plumbing they all share.
"""

import flask
import pytest
from flask import Blueprint, redirect, request, session

from common.session import load_stored_session
from common.web import create_base_app, require_csrf, safe_next
from tests.support import RedisServer, free_port


def make_app(redis_url, app_name="demo_app", base_url="http://localhost:5999"):
    """A minimal app: writes and reads one value in its session."""
    app = create_base_app(__name__, app_name, title="Demo", base_url=base_url,
                          test_config={"REDIS_URL": redis_url, "WEB_BASE_URL": base_url})
    bp = Blueprint("demo", __name__)

    @bp.get("/set/<value>")
    def set_value(value):
        session["value"] = value
        return "stored"

    @bp.get("/get")
    def get_value():
        return session.get("value", "(nothing)")

    @bp.post("/form")
    def form():
        require_csrf()
        return "accepted"

    @bp.get("/csrf")
    def csrf():
        from common.web import csrf_token

        return csrf_token()

    @bp.get("/go")
    def go():
        return redirect(safe_next(request.args.get("next")))

    app.register_blueprint(bp)
    return app


def test_session_lives_in_redis_under_the_app_prefix(redis_server):
    import redis

    app = make_app(redis_server.url)
    client = app.test_client()
    client.get("/set/hello")
    cookie = client.get_cookie("demo_app_session")
    assert cookie is not None and "hello" not in cookie.value  # only an opaque id in the browser
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    stored = redis.Redis.from_url(redis_server.url).get(f"demo_app:session:{cookie.value}")
    assert stored is not None and load_stored_session(stored)["value"] == "hello"
    ttl = redis.Redis.from_url(redis_server.url).ttl(f"demo_app:session:{cookie.value}")
    assert 0 < ttl <= 28800  # bounded lifetime, not Flask's 31 days
    assert client.get("/get").text == "hello"


def test_two_apps_keep_separate_cookies(redis_server):
    first, second = make_app(redis_server.url, "app_one"), make_app(redis_server.url, "app_two")
    c1, c2 = first.test_client(), second.test_client()
    c1.get("/set/one")
    c2.get("/set/two")
    assert c1.get_cookie("app_one_session").value != c2.get_cookie("app_two_session").value
    assert c1.get("/get").text == "one" and c2.get("/get").text == "two"


def test_secure_cookie_when_base_url_is_https(redis_server):
    client = make_app(redis_server.url, base_url="https://app.example.test").test_client()
    client.get("/set/x", base_url="https://app.example.test")
    assert client.get_cookie("demo_app_session", domain="app.example.test").secure


def test_redis_down_gives_a_503_page_and_recovers_by_itself(tmp_path):
    port = free_port()
    app = make_app(f"redis://127.0.0.1:{port}/0")
    client = app.test_client()
    down = client.get("/set/hello")
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "5"
    assert "temporarily_unavailable" in down.text and "Redis" in down.text
    assert "Traceback" not in down.text
    assert client.get("/set/x", headers={"Accept": "application/json"}).json["error"] == "temporarily_unavailable"

    # A browser that already holds a session cookie: reading needs Redis too.
    client.set_cookie("demo_app_session", "an-existing-session-id", domain="localhost")
    assert client.get("/get").status_code == 503

    server = RedisServer(tmp_path / "redis", port=port).start()
    try:
        # Same app object, no restart: redis-py reconnects on the next call.
        assert client.get("/set/back").text == "stored"
        assert client.get("/get").text == "back"
    finally:
        server.stop()


def test_csrf_token_is_required_for_posts(redis_server):
    client = make_app(redis_server.url).test_client()
    assert client.post("/form", data={}).status_code == 400
    token = client.get("/csrf").text
    assert client.post("/form", data={"csrf_token": "wrong"}).status_code == 400
    assert client.post("/form", data={"csrf_token": token}).text == "accepted"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/profile", "/profile"),
        ("/profile?tab=claims", "/profile?tab=claims"),
        ("https://evil.test/", "/"),
        ("//evil.test/", "/"),
        ("/\\evil.test", "/"),
        ("\\\\evil.test", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
        ("profile", "/"),
    ],
)
def test_safe_next_accepts_same_origin_paths_only(target, expected):
    assert safe_next(target) == expected


def test_errors_are_escaped_and_security_headers_present(redis_server):
    client = make_app(redis_server.url).test_client()
    response = client.get("/no-such-page/<script>")
    assert response.status_code == 404
    assert "<script>" not in response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_health_probe_and_static_files_need_no_redis(tmp_path):
    """/healthz and static files answer while Redis is down, even with a session cookie.

    A probe that failed with Redis would make a process manager restart a
    healthy app; the 503 page needs its stylesheet.
    """
    from flask import jsonify

    port = free_port()
    app = make_app(f"redis://127.0.0.1:{port}/0")
    app.add_url_rule("/healthz", "healthz", lambda: jsonify(status="ok"))
    client = app.test_client()
    client.set_cookie("demo_app_session", "an-existing-session-id", domain="localhost")
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json == {"status": "ok"}
    assert "Set-Cookie" not in health.headers
    style = client.get("/_common/static/style.css")
    assert style.status_code == 200 and "Set-Cookie" not in style.headers
    style.close()
    # Everything else still needs the session, and says so with the 503 page.
    assert client.get("/get").status_code == 503


def test_a_read_only_request_does_not_undo_a_concurrent_write(redis_server):
    """A request that only read the session must not put its stale copy back."""
    app = make_app(redis_server.url)
    writer, reader = app.test_client(), app.test_client()
    writer.get("/set/old")
    sid = writer.get_cookie("demo_app_session").value
    reader.set_cookie("demo_app_session", sid, domain="localhost")

    # The reader loads the session, then the writer stores a new value before
    # the reader's response is saved (as two tabs of one browser would).
    with app.test_request_context("/get", headers={"Cookie": f"demo_app_session={sid}"}):
        loaded = app.session_interface.open_session(app, flask.request)
        assert loaded["value"] == "old"
        assert writer.get("/set/new").text == "stored"
        app.session_interface.save_session(app, loaded, app.response_class("x"))
    assert reader.get("/get").text == "new"


def test_session_lock_lets_one_request_do_the_work(redis_server):
    """The second holder of the lock sees what the first stored (single flight)."""
    import threading

    from common.session import save_session_now, session_lock, stored_session_value

    app = make_app(redis_server.url)
    client = app.test_client()
    client.get("/set/start")
    sid = client.get_cookie("demo_app_session").value
    done, order = [], []

    def one_request(name):
        with app.test_request_context("/", headers={"Cookie": f"demo_app_session={sid}"}):
            current = app.session_interface.open_session(app, flask.request)
            with session_lock(app, current, "work"):
                order.append(name)
                if stored_session_value(app, current, "value") == "start":
                    current["value"] = f"done-by-{name}"
                    save_session_now(app, current)
                    done.append(name)

    threads = [threading.Thread(target=one_request, args=(n,)) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(order) == 3 and len(done) == 1
    assert client.get("/get").text == f"done-by-{done[0]}"


def test_sessions_are_stored_compressed_and_old_plain_json_still_loads(redis_server):
    import json

    import redis

    app = make_app(redis_server.url)
    client = app.test_client()
    client.get("/set/" + "x" * 2000)
    store = redis.Redis.from_url(redis_server.url)
    raw = store.get(f"demo_app:session:{client.get_cookie('demo_app_session').value}")
    assert raw[:1] == b"\x78" and len(raw) < 500  # zlib: 2000 repeated bytes shrink
    # A session written as plain JSON (before compression) is still read.
    store.set("demo_app:session:plain-json-session", json.dumps({"value": "legacy"}), ex=60)
    client.set_cookie("demo_app_session", "plain-json-session", domain="localhost")
    assert client.get("/get").text == "legacy"


# -- a sign-out or a new session id must not be undone by a slower request ------------------


def make_racing_app(redis_url):
    """The demo app plus a slow view that changes the session, a sign-out and a sign-in.

    ``/slow-set/<value>`` loads the session, signals ``entered``, waits for
    ``release`` and only then changes the session: a request still running
    (tab A) while another tab signs out.  ``/logout`` and ``/signin`` do what
    web_app's do to the session: clear it, maybe refill it, give it a new id.
    """
    import threading

    from common.session import regenerate_session_id

    app = make_app(redis_url)
    app.config.update(ENTERED=threading.Event(), RELEASE=threading.Event())

    def slow_set(value):
        session.get("value")  # loaded before the other tab acts
        app.config["ENTERED"].set()
        app.config["RELEASE"].wait(10)
        session["value"] = value  # web_app: save_flow_log after POST /call-api
        return "stored"

    def logout():
        session.clear()
        session["logout_state"] = "s"
        regenerate_session_id(app, session)
        return "signed out"

    def signin():
        session.clear()
        session["tokens"] = "fresh"
        regenerate_session_id(app, session)
        return "signed in"

    app.add_url_rule("/slow-set/<value>", "slow_set", slow_set)
    app.add_url_rule("/logout", "logout", logout, methods=["POST"])
    app.add_url_rule("/signin", "signin", signin)
    return app


def _session_cookies(response):
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith("demo_app_session=")]


def _store(redis_server):
    import redis

    return redis.Redis.from_url(redis_server.url)


def test_a_slow_request_does_not_bring_back_a_signed_out_session(redis_server):
    """Tab A changes the session in a slow request while tab B signs out (two clients, one cookie).

    Before: A wrote the old id back to Redis, tokens and all, and re-set the
    old cookie: /get with the old cookie still saw the data (a lost sign-out).
    """
    import threading

    app = make_racing_app(redis_server.url)
    tab_a, tab_b = app.test_client(), app.test_client()
    tab_a.get("/set/signed-in")
    old_sid = tab_a.get_cookie("demo_app_session").value
    tab_b.set_cookie("demo_app_session", old_sid, domain="localhost")

    answers = {}
    slow = threading.Thread(target=lambda: answers.setdefault("a", tab_a.get("/slow-set/stale")))
    slow.start()
    assert app.config["ENTERED"].wait(5)
    out = tab_b.post("/logout")
    app.config["RELEASE"].set()
    slow.join(10)

    assert out.text == "signed out" and answers["a"].text == "stored"
    assert _store(redis_server).exists(f"demo_app:session:{old_sid}") == 0
    assert _session_cookies(answers["a"]) == []  # the stale tab does not re-set the old cookie
    new_sid = tab_b.get_cookie("demo_app_session").value
    assert new_sid != old_sid
    assert load_stored_session(_store(redis_server).get(f"demo_app:session:{new_sid}")) == {
        "_permanent": True, "logout_state": "s"}
    # The old cookie finds nothing: the sign-out holds.
    stale = app.test_client()
    stale.set_cookie("demo_app_session", old_sid, domain="localhost")
    assert stale.get("/get").text == "(nothing)"


def test_a_request_loaded_before_sign_in_cannot_recreate_the_old_id(redis_server):
    """open/save by hand: a request that loaded the pre-sign-in session saves after the id changed."""
    app = make_racing_app(redis_server.url)
    browser = app.test_client()
    browser.get("/set/before")
    old_sid = browser.get_cookie("demo_app_session").value
    interface = app.session_interface

    with app.test_request_context("/set/x", headers={"Cookie": f"demo_app_session={old_sid}"}):
        loaded = interface.open_session(app, flask.request)
        assert loaded.stored and loaded["value"] == "before"
        assert browser.get("/signin").text == "signed in"  # the callback: new id, old key deleted
        loaded["value"] = "stale"
        response = app.response_class("x")
        interface.save_session(app, loaded, response)

    assert _store(redis_server).exists(f"demo_app:session:{old_sid}") == 0
    assert _session_cookies(response) == []
    new_sid = browser.get_cookie("demo_app_session").value
    assert load_stored_session(_store(redis_server).get(f"demo_app:session:{new_sid}"))["tokens"] == "fresh"


def test_an_unchanged_request_after_sign_out_sends_no_cookie(redis_server):
    """Only EXPIRE for an unchanged session, as before; its key being gone means no cookie either."""
    app = make_racing_app(redis_server.url)
    browser = app.test_client()
    browser.get("/set/v")
    sid = browser.get_cookie("demo_app_session").value
    interface = app.session_interface
    with app.test_request_context("/get", headers={"Cookie": f"demo_app_session={sid}"}):
        loaded = interface.open_session(app, flask.request)
        _store(redis_server).delete(f"demo_app:session:{sid}")
        response = app.response_class("x")
        interface.save_session(app, loaded, response)
    assert _store(redis_server).exists(f"demo_app:session:{sid}") == 0
    assert _session_cookies(response) == []
    # A session that still exists keeps getting its expiry pushed back and its cookie.
    browser.get("/set/w")
    sid = browser.get_cookie("demo_app_session").value
    _store(redis_server).expire(f"demo_app:session:{sid}", 60)
    answer = browser.get("/get")
    assert answer.text == "w" and _session_cookies(answer)
    assert _store(redis_server).ttl(f"demo_app:session:{sid}") > 60


def test_a_new_session_never_overwrites_an_existing_key(redis_server):
    """A brand-new session is created with SET NX: it cannot clobber a key that exists."""
    app = make_racing_app(redis_server.url)
    interface = app.session_interface
    with app.test_request_context("/set/x"):
        fresh = interface.open_session(app, flask.request)
        assert not fresh.stored
        _store(redis_server).set(f"demo_app:session:{fresh.sid}", b'{"value": "theirs"}', ex=60)
        fresh["value"] = "mine"
        response = app.response_class("x")
        interface.save_session(app, fresh, response)
    stored = load_stored_session(_store(redis_server).get(f"demo_app:session:{fresh.sid}"))
    assert stored == {"value": "theirs"} and _session_cookies(response) == []


def test_save_session_now_creates_then_updates_and_respects_a_sign_out(redis_server):
    """save_session_now under the XX/NX rule: a new session written early is still saved at the end."""
    from common.session import save_session_now

    app = make_racing_app(redis_server.url)
    interface = app.session_interface
    with app.test_request_context("/set/x"):
        fresh = interface.open_session(app, flask.request)
        fresh["value"] = "early"
        assert save_session_now(app, fresh) is True
        fresh["value"] = "late"
        response = app.response_class("x")
        interface.save_session(app, fresh, response)
    assert load_stored_session(_store(redis_server).get(f"demo_app:session:{fresh.sid}"))["value"] == "late"
    assert _session_cookies(response)

    with app.test_request_context("/set/x", headers={"Cookie": f"demo_app_session={fresh.sid}"}):
        loaded = interface.open_session(app, flask.request)
        _store(redis_server).delete(f"demo_app:session:{fresh.sid}")  # signed out meanwhile
        loaded["value"] = "renewed tokens"
        assert save_session_now(app, loaded) is False
    assert _store(redis_server).exists(f"demo_app:session:{fresh.sid}") == 0
