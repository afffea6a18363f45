"""The Redis session store and the shared web plumbing, against a real Redis.

A tiny app composed of the :mod:`common.web` pieces stands in for any
of the suite's apps: the point is the plumbing they all share.
"""

import flask
import pytest
from flask import Blueprint, redirect, request, session

from common.config import load_settings
from common.errors import init_error_pages
from common.session import load_stored_session
from common.web import (
    default_csp,
    init_health,
    init_security_headers,
    init_server_session,
    init_settings,
    init_templates,
    require_csrf,
    safe_next,
)
from tests.support import RedisServer, free_port


def make_app(redis_url, app_name="demo_app", base_url="http://localhost:5999"):
    """A minimal app: writes and reads one value in its session."""
    test_config = {"REDIS_URL": redis_url, "WEB_BASE_URL": base_url}
    app = flask.Flask(__name__)
    init_settings(
        app,
        load_settings(test_config, component="web_app"),
        app_name=app_name,
        base_url=base_url,
        test_config=test_config,
    )
    init_server_session(app, app.config["SETTINGS"])
    init_templates(app, title="Demo")
    init_error_pages(app, answer="html")
    init_security_headers(app, csp=default_csp())
    init_health(app)
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


def test_secure_host_prefixed_cookie_when_base_url_is_https(redis_server):
    """On https the session cookie is ``__Host-``, Secure, Path=/ and has no Domain (RFC 6265bis §4.1.3.2)."""
    client = make_app(redis_server.url, base_url="https://app.example.test").test_client()
    answer = client.get("/set/x", base_url="https://app.example.test")
    header = answer.headers["Set-Cookie"]
    assert header.startswith("__Host-demo_app_session=")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"secure", "path", "httponly"} <= attributes and "domain" not in attributes
    assert "Path=/;" in header or header.endswith("Path=/")
    assert client.get_cookie("demo_app_session", domain="app.example.test") is None
    # On http the plain name: browsers refuse a __Host- cookie that is not Secure.
    plain = make_app(redis_server.url).test_client().get("/set/x", base_url="http://localhost:5999")
    assert plain.headers["Set-Cookie"].startswith("demo_app_session=")
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_redis_down_gives_a_503_page_and_recovers_by_itself(tmp_path):
    port = free_port()
    app = make_app(f"redis://127.0.0.1:{port}/0")
    client = app.test_client()
    down = client.get("/set/hello")
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "5"
    assert "temporarily_unavailable" in down.text and "Redis" in down.text
    assert "Traceback" not in down.text
    as_json = client.get("/set/x", headers={"Accept": "application/json"})
    assert as_json.json["error"] == "temporarily_unavailable"

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
        "_permanent": True,
        "logout_state": "s",
    }
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


# -- the store decodes JSON only: never pickle, never a 500 -----------------------------------


class _TouchOnUnpickle:
    """Unpickling this creates ``path``: a stand-in for any code an attacker would run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("compressed", [False, True], ids=["pickle", "zlib-pickle"])
def test_a_pickled_session_is_never_unpickled(redis_server, tmp_path, compressed):
    """Flask-Session's serializer fell back to ``pickle.loads`` for bytes that were not JSON
    (flask_session/base.py ``MsgSpecSerializer.decode``): whoever could write one Redis key
    could run code in every app.  The store decodes JSON only; a pickle is no session."""
    import pickle
    import zlib

    payload = pickle.dumps(_TouchOnUnpickle(tmp_path / "unpickled"))
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(canary)))
    assert canary.exists(), "the payload is live: unpickling it does create the file"

    planted = zlib.compress(payload) if compressed else payload
    _store(redis_server).set("demo_app:session:planted", planted, ex=60)
    client = make_app(redis_server.url).test_client()
    client.set_cookie("demo_app_session", "planted", domain="localhost")
    answer = client.get("/get")
    assert answer.status_code == 200 and answer.text == "(nothing)"  # a fresh session, not a 500
    assert not (tmp_path / "unpickled").exists()
    # Writing to it gives it a new id; the planted key is never adopted.
    assert client.get("/set/mine").text == "stored"
    new_sid = client.get_cookie("demo_app_session").value
    assert new_sid != "planted"
    assert load_stored_session(_store(redis_server).get(f"demo_app:session:{new_sid}"))["value"] == "mine"
    assert not (tmp_path / "unpickled").exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage that is neither JSON nor zlib",
        b"\x78\x9cnot a zlib stream",
        b"\xff\xfe\x00",  # not UTF-8
        b'["a", "JSON", "list"]',
        b'"a JSON string"',
        b"[" * 100_000,  # nested deeper than the recursion limit
    ],
    ids=["garbage", "bad-zlib", "bad-utf8", "json-list", "json-string", "deep-nesting"],
)
def test_a_stored_value_that_is_not_a_json_object_is_no_session(redis_server, raw):
    import zlib

    app = make_app(redis_server.url)
    for value in (raw, zlib.compress(raw)):
        _store(redis_server).set("demo_app:session:broken", value, ex=60)
        client = app.test_client()
        client.set_cookie("demo_app_session", "broken", domain="localhost")
        answer = client.get("/get")
        assert answer.status_code == 200 and answer.text == "(nothing)"


def test_a_zlib_bomb_is_no_session(redis_server):
    """A stored value inflating past MAX_SESSION_BYTES is refused before it fills memory."""
    import zlib

    from common.session_store import MAX_SESSION_BYTES

    bomb = zlib.compress(b'{"value": "' + b"x" * (2 * MAX_SESSION_BYTES) + b'"}', 9)
    assert len(bomb) < 10_000
    _store(redis_server).set("demo_app:session:bomb", bomb, ex=60)
    client = make_app(redis_server.url).test_client()
    client.set_cookie("demo_app_session", "bomb", domain="localhost")
    assert client.get("/get").text == "(nothing)"


# -- the dependency behaviour the store relies on (a Flask or redis-py upgrade that changes it fails here) --


def test_flask_calls_the_session_interface_as_the_store_expects():
    """common/session_store.py implements Flask's public SessionInterface; it relies on Flask
    opening the session before the view, saving it after the after_request functions (with the
    response they return), skipping the save for the null session, and on the cookie helpers."""
    from datetime import datetime, timedelta, timezone

    from flask.sessions import NullSession, SessionInterface

    calls = []

    class Recording(SessionInterface):
        def open_session(self, app, request):
            calls.append("open")
            return None if request.path == "/null" else {"opened": True}

        def save_session(self, app, session, response):
            calls.append(("save", dict(session), response.headers.get("X-After")))

    app = flask.Flask(__name__)
    app.config.update(SESSION_COOKIE_NAME="demo_app_session", PERMANENT_SESSION_LIFETIME=timedelta(hours=1))
    app.session_interface = Recording()
    app.add_url_rule("/", "index", lambda: calls.append("view") or "ok")
    app.add_url_rule("/null", "null", lambda: "ok")

    @app.after_request
    def after(response):
        calls.append("after_request")
        response.headers["X-After"] = "yes"
        return response

    app.test_client().get("/")
    assert calls == ["open", "view", "after_request", ("save", {"opened": True}, "yes")]
    calls.clear()
    app.test_client().get("/null")  # open_session returned None: Flask's null session, never saved
    assert calls == ["open", "after_request"]

    interface = SessionInterface()
    null = interface.make_null_session(app)
    assert isinstance(null, NullSession) and interface.is_null_session(null)
    with pytest.raises(RuntimeError):
        null["x"] = 1  # read-only: a sessionless path can never write to Redis
    assert interface.get_cookie_name(app) == "demo_app_session"
    permanent, transient = flask.sessions.SecureCookieSession(), flask.sessions.SecureCookieSession()
    permanent.permanent = True
    assert permanent == {"_permanent": True}  # the flag the store keeps in the session's data
    expires = interface.get_expiration_time(app, permanent)
    assert timedelta(minutes=59) < expires - datetime.now(timezone.utc) <= timedelta(hours=1)
    assert interface.get_expiration_time(app, transient) is None
    # Unchanged permanent sessions get their cookie again (SESSION_REFRESH_EACH_REQUEST, on by default).
    assert app.config["SESSION_REFRESH_EACH_REQUEST"] and interface.should_set_cookie(app, permanent)
    assert not interface.should_set_cookie(app, transient)


def test_redis_answers_the_conditional_writes_as_the_store_expects(redis_server):
    """The write-guard reads redis-py's answers: SET XX/NX give a falsy answer when skipped,
    EXPIRE a falsy one for a missing key."""
    store = _store(redis_server)
    assert not store.set("pin:guard", b"1", ex=60, xx=True) and not store.exists("pin:guard")
    assert store.set("pin:guard", b"1", ex=60, nx=True) is True
    assert not store.set("pin:guard", b"2", ex=60, nx=True) and store.get("pin:guard") == b"1"
    assert store.set("pin:guard", b"3", ex=60, xx=True) is True and store.get("pin:guard") == b"3"
    assert store.expire("pin:guard", 120) and 60 < store.ttl("pin:guard") <= 120
    store.delete("pin:guard")
    assert not store.expire("pin:guard", 120) and not store.exists("pin:guard")


def test_no_private_api_of_a_dependency_is_used():
    """The session code stands on public API only (Flask's SessionInterface, redis-py): it imports
    neither Flask-Session nor pickle and reads no underscored attribute of another object."""
    import ast
    import inspect

    import common.session
    import common.session_store

    for module in (common.session, common.session_store):
        tree = ast.parse(inspect.getsource(module))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {
            (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        }
        assert not imported & {"flask_session", "pickle", "msgspec"}
        private = [
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        ]
        assert private == [], f"{module.__name__} reaches into {private}"
