"""The chat page at `/`, driven in headless Chromium against a live `datamonkey-chat serve`.

Real flows use the server's default offline assistant. Where a test needs a reply the real
pipeline will not produce on demand (hostile markup, a failure, a slow reply, an analysis
job), it says so and injects a SCRIPTED RESPONSE with Playwright's `page.route`; everything
else on the page still talks to the live server.

Needs Debian's `chromium` (/usr/bin/chromium) and the `playwright` Python package; never
`playwright install` (no browser downloads). `DATAMONKEY_CHAT_SCREENSHOT=1` also rewrites
docs/screenshot.png for the README.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import API_PREFIX, live_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("DATAMONKEY_CHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXPECTED_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 20_000

# Installed before any page script: records CSP violations and requests to other origins.
WATCH_SCRIPT = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ''}`
    + ` at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`);
});
"""


def _need_browser() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    return sync_api


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = _need_browser()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:  # noqa: F811
    """A fresh browser context (own localStorage: a new user) on the chat page."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.add_init_script(WATCH_SCRIPT)
    foreign: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(live_server) else foreign.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_page(page)
    yield page
    # Chromium reports inline handlers met while DOMPurify parses hostile markup into its
    # inert DOMParser document (nothing runs there); every other violation is a failure.
    violations = [
        v
        for v in page.evaluate("window.__cspViolations")
        if not (v.startswith("script-src-attr") and "/static/vendor/purify.min.js:" in v)
    ]
    context.close()
    assert foreign == [], f"the page contacted other origins: {foreign}"
    assert errors == [], f"uncaught errors in the page: {errors}"
    assert violations == [], f"Content-Security-Policy violations: {violations}"


def open_page(page: Any, path: str = "/") -> None:
    page.goto(path)
    page.wait_for_selector("body[data-ready=true]")


def send(page: Any, text: str) -> None:
    page.fill("[data-testid=input]", text)
    page.press("[data-testid=input]", "Enter")


def last_reply(page: Any) -> Any:
    return page.locator(".message.assistant").last


def wait_reply_done(page: Any) -> None:
    page.wait_for_selector("[data-testid=send]:not([hidden])")


def conversation_titles(page: Any) -> list[str]:
    titles: list[str] = page.locator("[data-testid=conversation-list] .title").all_inner_texts()
    return titles


def sse(*events: tuple[str, Any]) -> str:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


def script_reply(
    page: Any, body: str, status: int = 200, content_type: str = "text/event-stream"
) -> None:
    """SCRIPTED RESPONSE: the next message POSTs get `body` instead of the live assistant."""

    def handle(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(status=status, headers={"content-type": content_type}, body=body)

    page.route("**/api/v1/chat/*/messages", handle)


def done_event(content: str) -> tuple[str, Any]:
    return (
        "done",
        {"message": {"role": "assistant", "content": content, "timestamp": "2026-01-01T00:00:00Z"}},
    )


# ---------------------------------------------------------------------- headers and serving


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_page_is_served_with_a_strict_csp(live_server: str) -> None:  # noqa: F811
    status, headers, body = _get(live_server + "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert headers["x-content-type-options"] == "nosniff"
    directives = {}
    for part in headers["content-security-policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value.strip()
    for name, value in EXPECTED_CSP.items():
        assert directives.get(name) == value, (name, directives.get(name))
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "unsafe-eval" not in headers["content-security-policy"]
    html = body.decode()
    assert "<script>" not in html and " on" + "click=" not in html  # no inline code
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html

    status, headers, _ = _get(live_server + "/static/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "content-security-policy" in headers and headers["x-content-type-options"] == "nosniff"
    for vendored in (
        "marked.js",
        "purify.min.js",
        "vega.min.js",
        "vega-lite.min.js",
        "vega-embed.min.js",
        "vega-interpreter.js",
    ):
        assert _get(f"{live_server}/static/vendor/{vendored}")[0] == 200, vendored

    for escape in (
        "/static/../api/app.py",
        "/static/%2e%2e/%2e%2e/api/app.py",
        "/static/vendor",
        "/static/nope.js",
    ):
        assert _get(live_server + escape)[0] == 404, escape

    _, _, schema = _get(live_server + API_PREFIX + "/openapi.json")
    paths = json.loads(schema)["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)


# ------------------------------------------------------------------------ the real flows


def test_chat_stream_reload_rename_delete(page: Any) -> None:
    assert conversation_titles(page) == []
    with page.expect_response(
        lambda r: r.url.endswith("/messages") and r.request.method == "POST"
    ) as reply_info:
        send(page, "what is FEL?")
    reply = reply_info.value
    assert reply.headers["content-type"].startswith("text/event-stream")  # streamed
    wait_reply_done(page)
    answer = last_reply(page).locator(".content")
    assert "Fixed Effects Likelihood" in answer.inner_text()
    assert answer.locator("strong").count() >= 1  # markdown rendered, not shown raw
    assert "**" not in answer.inner_text()
    assert page.input_value("[data-testid=input]") == ""
    assert page.locator(".message.user .content").inner_text() == "what is FEL?"

    # The conversation shows in the sidebar and gets its title shortly after the reply.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#conversation-list .title')]"
        ".some(t => !t.classList.contains('untitled'))"
    )
    token = page.evaluate("localStorage.getItem('datamonkey-chat.token')")
    assert token

    # Reload: the token in localStorage brings the conversation back, and it reopens.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert len(conversation_titles(page)) == 1
    page.wait_for_selector(".message.assistant")
    assert "Fixed Effects Likelihood" in last_reply(page).inner_text()

    # A second conversation from the new-chat button; newest first.
    page.click("[data-testid=new-chat]")
    assert page.locator(".message").count() == 0
    send(page, "Which method finds episodic selection?")
    wait_reply_done(page)
    assert "aBSREL" in last_reply(page).inner_text()
    page.wait_for_function("() => document.querySelectorAll('#conversation-list li').length === 2")
    page.wait_for_function(
        "() => !document.querySelector('#conversation-list li .title')"
        ".classList.contains('untitled')"
    )
    assert "episodic" in conversation_titles(page)[0].lower()

    # Rename the older one.
    older = page.locator("[data-testid=conversation-list] li").nth(1)
    older.hover()
    older.locator(".rename").click()
    page.fill(".rename-input", "FEL basics")
    page.press(".rename-input", "Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#conversation-list .title')]"
        ".some(t => t.textContent === 'FEL basics')"
    )
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert "FEL basics" in conversation_titles(page)

    # Delete both (the page asks first).
    page.on("dialog", lambda dialog: dialog.accept())
    for _ in range(2):
        count = page.locator("[data-testid=conversation-list] li").count()
        first = page.locator("[data-testid=conversation-list] li").first
        first.hover()
        first.locator(".delete").click()
        page.wait_for_function(
            f"() => document.querySelectorAll('#conversation-list li').length === {count - 1}"
        )
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert conversation_titles(page) == []
    assert page.locator("#empty-list").is_visible()


def test_enter_sends_and_shift_enter_adds_a_line(page: Any) -> None:
    box = page.locator("[data-testid=input]")
    box.click()
    box.type("list")
    box.press("Shift+Enter")
    box.type("methods")
    assert box.input_value() == "list\nmethods"
    assert page.locator(".message").count() == 0
    box.press("Enter")
    wait_reply_done(page)
    assert page.locator(".message.user .content").inner_text() == "list\nmethods"
    assert "MEME" in last_reply(page).inner_text()


def test_forget_me_clears_the_token(page: Any) -> None:
    send(page, "hello")
    wait_reply_done(page)
    token = page.evaluate("localStorage.getItem('datamonkey-chat.token')")
    assert token
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: r.url.endswith("/api/v1/session")) as ended:
        page.click("[data-testid=forget-me]")
    assert ended.value.status == 204  # the session ended on the server, not only here
    assert page.evaluate("localStorage.getItem('datamonkey-chat.token')") is None
    assert conversation_titles(page) == []
    old = page.request.get("/api/v1/chat", headers={"user_token": token})
    assert old.status == 401
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert conversation_titles(page) == []


def _api(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """A request to the live server's API; returns (headers, decoded JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["user_token"] = token
    request = urllib.request.Request(base + API_PREFIX + path, data, headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers, json.loads(response.read() or b"null")


# As a reader's wheel does (the thread's CSS smooth scrolling applies to scripts only).
SCROLL_TO_TOP = "document.getElementById('thread').scrollTo({top: 0, behavior: 'instant'})"


def test_a_long_conversation_opens_at_its_newest_page_and_pages_back_on_scroll(
    page: Any,
    live_server: str,  # noqa: F811
) -> None:
    turns = 55  # 110 messages: pages of 50, 50 and 10
    headers, created = _api(live_server, "POST", "/chat", {"title": "A long one"})
    token = headers["X-Session-Token"]
    for i in range(turns):
        _api(
            live_server, "POST", f"/chat/{created['id']}/messages", {"message": f"note {i}"}, token
        )
    page.evaluate("t => localStorage.setItem('datamonkey-chat.token', t)", token)
    page.goto(f"/#c={created['id']}")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")

    def user_texts() -> list[str]:
        texts: list[str] = page.locator(".message.user .content").all_inner_texts()
        return texts

    # The newest page only, scrolled to its end.
    assert page.locator(".message").count() == 50
    assert user_texts() == [f"note {i}" for i in range(turns - 25, turns)]
    page.wait_for_function(
        "() => { const t = document.getElementById('thread');"
        " return t.scrollHeight - t.scrollTop - t.clientHeight < 5; }"
    )
    # Scrolling up loads the older pages, in order, keeping the view where it was.
    for expected in (100, 110):
        anchor = page.locator(".message").first
        anchor_id = anchor.get_attribute("data-message-id")
        page.evaluate(SCROLL_TO_TOP)
        page.wait_for_function(f"() => document.querySelectorAll('.message').length === {expected}")
        still = page.locator(f".message[data-message-id='{anchor_id}']")
        assert still.evaluate(
            "el => { const t = document.getElementById('thread').getBoundingClientRect();"
            " const r = el.getBoundingClientRect(); return r.bottom > t.top && r.top < t.bottom; }"
        ), "the message that was at the top stays in view"
    assert user_texts() == [f"note {i}" for i in range(turns)]
    ids = [
        int(x)
        for x in page.locator(".message").evaluate_all("els => els.map(e => e.dataset.messageId)")
    ]
    assert ids == list(range(1, 2 * turns + 1))  # no gap, no repeat
    page.evaluate(SCROLL_TO_TOP)
    page.wait_for_timeout(300)  # nothing older: nothing more is asked for
    assert page.locator(".message").count() == 2 * turns
    assert page.locator("[data-testid=loading-older]").count() == 0


LIST_ITEMS = "#conversation-list li.conversation"


def test_the_conversation_list_pages_as_it_is_scrolled(
    page: Any,
    live_server: str,  # noqa: F811
) -> None:
    count = 65  # pages of 50 and 15
    headers, first = _api(live_server, "POST", "/chat", {"title": "list 0"})
    token = headers["X-Session-Token"]
    created = [first["id"]]
    for i in range(1, count):
        _, conversation = _api(live_server, "POST", "/chat", {"title": f"list {i}"}, token)
        created.append(conversation["id"])
    page.evaluate("t => localStorage.setItem('datamonkey-chat.token', t)", token)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")

    def listed() -> list[str]:
        ids: list[str] = page.locator(LIST_ITEMS).evaluate_all("els => els.map(e => e.dataset.id)")
        return ids

    page.wait_for_function(f"() => document.querySelectorAll('{LIST_ITEMS}').length === 50")
    assert listed() == created[::-1][:50]  # newest-updated first
    page.locator(LIST_ITEMS).last.evaluate("el => el.scrollIntoView({block: 'end'})")
    page.wait_for_function(f"() => document.querySelectorAll('{LIST_ITEMS}').length === {count}")
    assert listed() == created[::-1]  # no gap, no repeat
    page.locator(LIST_ITEMS).last.evaluate("el => el.scrollIntoView({block: 'end'})")
    page.wait_for_timeout(300)  # nothing older: nothing more is asked for
    assert page.locator(LIST_ITEMS).count() == count


# ----------------------------------------------------- scripted responses (named as such)


HOSTILE = (
    "Here is what I found.\n\n"
    "<img src=x onerror=\"window.__pwned='img'\">\n\n"
    "[a harmless-looking link](javascript:window.__pwned='markdown-link')\n\n"
    "<a href=\"JaVaScRiPt:window.__pwned='anchor'\">raw anchor</a>\n\n"
    "<script>window.__pwned='script'</script>\n\n"
    "<svg onload=\"window.__pwned='svg'\"><circle r=5></circle></svg>\n\n"
    "<iframe src=\"javascript:window.__pwned='iframe'\"></iframe>\n\n"
    "<div onmouseover=\"window.__pwned='hover'\">hover me</div>\n\n"
    "<form action=\"javascript:window.__pwned='form'\"><button>go</button></form>\n\n"
    "**bold survives**"
)

UNSAFE_DOM = """() => {
  const found = [];
  for (const el of document.querySelectorAll('#messages *')) {
    for (const attr of el.attributes) {
      const value = attr.value.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
      if (attr.name.toLowerCase().startsWith('on')) found.push(el.tagName + ' ' + attr.name);
      if (value.startsWith('javascript:')) found.push(el.tagName + ' ' + attr.name + '=' + value);
    }
    const banned = ['SCRIPT', 'IFRAME', 'FORM', 'OBJECT', 'EMBED'];
    if (banned.includes(el.tagName)) found.push(el.tagName);
  }
  return found;
}"""


def test_hostile_markup_in_a_reply_renders_inert(page: Any) -> None:
    # SCRIPTED RESPONSE: a reply full of markup that would run code if rendered raw, split
    # across deltas mid-tag, as a model under prompt injection might stream it.
    chunks = [HOSTILE[i : i + 37] for i in range(0, len(HOSTILE), 37)]
    script_reply(page, sse(*[("delta", {"text": c}) for c in chunks], done_event(HOSTILE)))
    send(page, "show me something nasty")
    wait_reply_done(page)
    reply = last_reply(page)
    assert reply.locator("strong", has_text="bold survives").count() == 1
    assert reply.locator("a", has_text="a harmless-looking link").count() == 1
    # Poke everything that could fire.
    reply.locator("text=hover me").hover()
    reply.locator("a", has_text="a harmless-looking link").click()
    reply.locator("a", has_text="raw anchor").click()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate(UNSAFE_DOM) == []
    # Stored history (a reload) goes through the same marked + DOMPurify path: check it too.
    fragment = page.evaluate(
        "t => { const d = document.createElement('div'); "
        "d.append(DOMPurify.sanitize(marked.parse(t), {RETURN_DOM_FRAGMENT: true})); "
        "return d.querySelectorAll('[onerror],[onload],[onmouseover],script,iframe').length }",
        HOSTILE,
    )
    assert fragment == 0


def test_a_failed_reply_shows_an_error_and_keeps_the_text(page: Any) -> None:
    # SCRIPTED RESPONSE: the provider fails before the stream starts (a 502 ServerError body).
    body = json.dumps(
        {
            "error": "Bad Gateway",
            "code": "provider_error",
            "details": "the model provider failed: connection refused",
        }
    )
    script_reply(page, body, status=502, content_type="application/json")
    send(page, "what is MEME?")
    error = page.locator("[data-testid=error-line]")
    error.wait_for(state="visible")
    assert "connection refused" in error.inner_text()
    assert page.input_value("[data-testid=input]") == "what is MEME?"
    assert page.locator(".message").count() == 0

    # SCRIPTED RESPONSE: the stream starts, then fails in-band with an `error` event.
    page.unroute("**/api/v1/chat/*/messages")
    script_reply(
        page,
        sse(
            ("delta", {"text": "MEME is"}),
            (
                "error",
                {
                    "status": 504,
                    "error": "Gateway Timeout",
                    "code": "timeout",
                    "details": "no reply within 60 s",
                },
            ),
        ),
    )
    page.press("[data-testid=input]", "Enter")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=error-line]').innerText.includes('60 s')"
    )
    assert page.input_value("[data-testid=input]") == "what is MEME?"
    assert page.locator(".message").count() == 0

    # The live server answers once the scripted failures are gone; the error line clears.
    page.unroute("**/api/v1/chat/*/messages")
    page.press("[data-testid=input]", "Enter")
    wait_reply_done(page)
    assert "MEME" in last_reply(page).inner_text()
    assert not page.locator("[data-testid=error-line]").is_visible()


def test_stop_button_aborts_a_reply(page: Any) -> None:
    # SCRIPTED RESPONSE: a reply that never arrives (the request is held, never fulfilled).
    held: list[Any] = []
    page.route("**/api/v1/chat/*/messages", lambda route: held.append(route))
    with page.expect_request(lambda r: r.url.endswith("/messages") and r.method == "POST"):
        send(page, "what is SLAC?")
    page.wait_for_selector("[data-testid=stop]:not([hidden])")
    assert page.locator("[data-testid=send]").is_hidden()
    page.click("[data-testid=stop]")
    page.wait_for_selector("[data-testid=send]:not([hidden])")
    assert page.input_value("[data-testid=input]") == "what is SLAC?"
    assert page.locator(".stopped-note").is_visible()
    assert held, "the message request was not made"


SITES = [
    {
        "site": s,
        "alpha": round(0.4 + (s % 7) * 0.1, 3),
        "beta": round(0.2 + (s % 11) * 0.12, 3),
        "p": 0.02 if s in (17, 88, 131) else (0.05 if s in (40, 201) else 0.6),
    }
    for s in range(1, 241)
]
BRANCHES = [
    {"name": "NODE3", "p": 0.001, "corrected_p": 0.004},
    {"name": "HXB2_ENV", "p": 0.02, "corrected_p": 0.31},
    {"name": "U455", "p": 0.4, "corrected_p": 1.0},
]


def test_jobs_show_as_cards_with_live_status_and_plots(page: Any) -> None:
    # SCRIPTED RESPONSE: a reply whose start_analysis tool results carry job ids, and
    # scripted /jobs answers (running, then completed with plot data). The third job id is
    # left to the live server, which does not know it: that card must degrade gracefully.
    def started(call_id: str, job_id: str, method: str) -> list[tuple[str, Any]]:
        return [
            (
                "tool_call",
                {
                    "type": "tool_call",
                    "tool_name": "start_analysis",
                    "tool_call_id": call_id,
                    "payload": {"method": method},
                },
            ),
            (
                "tool_result",
                {
                    "type": "tool_result",
                    "tool_name": "start_analysis",
                    "tool_call_id": call_id,
                    "payload": {"job_id": job_id, "method": method, "status": "queued"},
                },
            ),
        ]

    script_reply(
        page,
        sse(
            ("delta", {"text": "Started the analyses."}),
            *started("c1", "jobfel1", "fel"),
            *started("c2", "jobabsrel1", "absrel"),
            *started("c3", "jobunknown1", "fubar"),
            done_event("Started the analyses."),
        ),
    )
    calls: dict[str, int] = {}

    def jobs(route: Any) -> None:
        job_id = route.request.url.rsplit("/", 1)[-1]
        if job_id == "jobunknown1":
            route.continue_()
            return
        calls[job_id] = calls.get(job_id, 0) + 1
        method = "fel" if job_id == "jobfel1" else "absrel"
        job: dict[str, Any] = {"job_id": job_id, "method": method, "error_message": None}
        if calls[job_id] == 1:
            job.update(status="running", progress=0.4)
        else:
            summary = (
                {"summary_text": "**3** sites under positive selection (p <= 0.1).", "sites": SITES}
                if method == "fel"
                else {"summary_text": "1 branch under episodic selection.", "branches": BRANCHES}
            )
            job.update(status="completed", progress=1.0, summary=summary)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(job))

    page.route("**/api/v1/jobs/*", jobs)
    send(page, "run FEL and aBSREL on my alignment")
    wait_reply_done(page)
    cards = page.locator("[data-testid=job-card]")
    assert cards.count() == 3
    page.wait_for_selector("[data-job-id=jobfel1][data-status=running]")
    fel = page.locator("[data-job-id=jobfel1][data-status=completed]")
    fel.wait_for()
    fel.locator(".job-plot svg").first.wait_for()
    assert "3 sites under positive selection" in fel.inner_text()
    absrel = page.locator("[data-job-id=jobabsrel1][data-status=completed]")
    absrel.locator(".job-plot svg").first.wait_for()
    unknown = page.locator("[data-job-id=jobunknown1]")
    unknown.locator(".status-pill.unknown").wait_for()
    assert "does not report" in unknown.inner_text()
    # Vega ran under the strict CSP (no eval): the fixture asserts no CSP violation.


def test_upload_by_picker_and_by_drop(page: Any, tmp_path: Path) -> None:
    fasta = tmp_path / "tiny.fasta"
    fasta.write_text(">a\nATGAAACCCGGGTTT\n>b\nATGAAACCTGGGTTT\n>c\nATGAAGCCCGGATTT\n")

    send(page, "hello")  # a session first, so the page lists the user's datasets
    wait_reply_done(page)

    # Against the live server: the file is validated and stored as a dataset.
    page.set_input_files("#file-input", str(fasta))
    note = page.locator(".note.dataset").last
    note.wait_for()
    assert "tiny.fasta" in note.inner_text()
    assert "3 sequences" in note.inner_text() and "5 codons" in note.inner_text()

    # SCRIPTED RESPONSE: the datasets API accepts the file (upstream's Datasets shape).
    page.route(
        "**/api/v1/datasets",
        lambda route: route.fulfill(
            status=201 if route.request.method == "POST" else 200,
            content_type="application/json",
            body=json.dumps(
                {
                    "datasets": [
                        {
                            "id": "ds1",
                            "name": "tiny.fasta",
                            "sequences": 3,
                            "sites": 15,
                            "codons": 5,
                            "type": "fasta",
                            "data_type": "nucleotide",
                        }
                    ]
                }
            )
            if route.request.method == "POST"
            else json.dumps({"datasets": [{"id": "ds1", "name": "tiny.fasta", "sequences": 3}]}),
        ),
    )
    drop = """name => {
      const dt = new DataTransfer();
      dt.items.add(new File(['>a\\nATGAAA\\n>b\\nATGAAG\\n'], name, {type: 'text/plain'}));
      window.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
      const init = {dataTransfer: dt, bubbles: true, cancelable: true};
      window.dispatchEvent(new DragEvent('drop', init));
    }"""
    page.evaluate(drop, "tiny.fasta")
    card = page.locator(".note.dataset").last
    card.wait_for()
    assert "3 sequences" in card.inner_text() and "5 codons" in card.inner_text()
    assert page.locator("#drop-overlay").is_hidden()
    card.locator("button", has_text="Run FEL").click()
    assert page.input_value("[data-testid=input]") == "Run FEL on dataset ds1"
    page.wait_for_selector("[data-testid=dataset-list] li")
    page.unroute("**/api/v1/datasets")

    # SCRIPTED RESPONSE: the datasets API rejects the file with its problems (422).
    page.route(
        "**/api/v1/datasets",
        lambda route: route.fulfill(
            status=422,
            content_type="application/json",
            body=json.dumps(
                {
                    "error": "Unprocessable",
                    "problems": [
                        {"sequence": "b", "position": 4, "message": "internal stop codon TAA"},
                        "sequences have different lengths",
                    ],
                }
            ),
        ),
    )
    before = page.locator(".note.upload-failed").count()
    page.set_input_files("#file-input", str(fasta))
    page.wait_for_function(
        f"() => document.querySelectorAll('.note.upload-failed').length === {before + 1}"
    )
    failed = page.locator(".note.upload-failed").last
    text = failed.inner_text()
    assert "sequence b, position 4: internal stop codon TAA" in text
    assert "different lengths" in text


def test_phone_layout(browser: Any, live_server: str) -> None:  # noqa: F811
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=live_server, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        open_page(page)
        sidebar = page.locator("#sidebar")
        assert sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"] <= 1  # off screen
        composer = page.locator("#composer").bounding_box()
        assert composer["x"] >= 0 and composer["x"] + composer["width"] <= 390
        send(page, "what is BUSTED?")
        wait_reply_done(page)
        assert "BUSTED" in last_reply(page).inner_text()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the page scrolls sideways on a phone"
        page.click("#menu-button")
        page.wait_for_function(
            "() => document.getElementById('sidebar').getBoundingClientRect().x >= 0"
        )
        page.wait_for_selector("#conversation-list li")
        page.click("#scrim", position={"x": 370, "y": 400})
        page.wait_for_function(
            "() => document.getElementById('sidebar').getBoundingClientRect().right <= 1"
        )
    finally:
        context.close()


def test_screenshot_for_readme(browser: Any, live_server: str) -> None:  # noqa: F811
    if not os.environ.get("DATAMONKEY_CHAT_SCREENSHOT"):
        pytest.skip("set DATAMONKEY_CHAT_SCREENSHOT=1 to rewrite docs/screenshot.png")
    context = browser.new_context(
        viewport={"width": 1280, "height": 820}, base_url=live_server, device_scale_factor=1
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        open_page(page)
        for question in ("Which method finds episodic selection?", "list methods", "what is FEL?"):
            page.click("[data-testid=new-chat]")
            send(page, question)
            wait_reply_done(page)
        page.wait_for_function(
            "() => ![...document.querySelectorAll('#conversation-list .title')]"
            ".some(t => t.classList.contains('untitled'))"
        )
        page.evaluate(SCROLL_TO_TOP)
        page.mouse.move(900, 780)
        out = REPO / "docs" / "screenshot.png"
        out.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(out))
    finally:
        context.close()


TOKEN_STORAGE_KEY = "datamonkey-chat.token"
HYPHY_EXAMPLE = Path("/usr/share/hyphy/data/integrase_BDA.nex")


@pytest.mark.hyphy
def test_a_real_analysis_from_upload_to_plot(browser: Any, live_server: str) -> None:  # noqa: F811
    """No scripted responses: real upload, real FUBAR run by HyPhy, the real job card."""
    if not HYPHY_EXAMPLE.exists():
        if os.environ.get("CI"):
            pytest.fail("HyPhy's example data is missing: .ci/run installs hyphy-pt")
        pytest.skip("HyPhy is not installed (apt-get install hyphy-pt)")
    context = browser.new_context(
        viewport={"width": 1280, "height": 820}, base_url=live_server, device_scale_factor=1
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.add_init_script(WATCH_SCRIPT)
        open_page(page)
        send(page, "which method finds pervasive selection at individual sites quickly?")
        wait_reply_done(page)
        page.set_input_files("#file-input", str(HYPHY_EXAMPLE))
        dataset = page.locator(".note.dataset").last
        dataset.wait_for()
        assert "11 sequences" in dataset.inner_text() and "288 codons" in dataset.inner_text()

        send(page, "run FUBAR on my alignment")
        wait_reply_done(page)
        card = page.locator("[data-testid=job-card]").last
        card.wait_for()
        job_id = card.get_attribute("data-job-id")
        assert job_id and "FUBAR" in last_reply(page).inner_text()
        done = page.locator(f"[data-job-id='{job_id}'][data-status=completed]")
        done.wait_for(timeout=120_000)  # HyPhy takes ~5 s here; allow for a loaded machine
        done.locator(".job-plot svg").first.wait_for()

        # The card says what the server computed from HyPhy's JSON.
        token = page.evaluate(f"localStorage.getItem({json.dumps(TOKEN_STORAGE_KEY)})")
        request = urllib.request.Request(
            f"{live_server}{API_PREFIX}/jobs/{job_id}", headers={"user_token": token}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            job = json.load(response)
        assert job["status"] == "completed"
        summary_start = job["summary"]["summary_text"].split("(")[0].strip()
        assert summary_start in done.inner_text()
        # one drawing per plot the FUBAR module built, and the table downloads as CSV
        assert done.locator("[data-testid=job-plot]").count() == len(job["summary"]["plots"])
        with page.expect_download() as download:
            done.locator("[data-testid='download-table.csv']").click()
        table = Path(download.value.path()).read_text().splitlines()
        assert table[0].startswith("site,partition,") and len(table) == 1 + 288
        assert page.evaluate("window.__cspViolations") == []
        if os.environ.get("DATAMONKEY_CHAT_SCREENSHOT"):
            done.evaluate("card => card.scrollIntoView({block: 'end'})")
            page.mouse.move(900, 780)
            page.screenshot(path=str(REPO / "docs" / "screenshot.png"))
    finally:
        context.close()


def test_api_docs_work_without_a_cdn(browser: Any, live_server: str) -> None:  # noqa: F811
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        foreign: list[str] = []
        page.on(
            "request", lambda r: None if r.url.startswith(live_server) else foreign.append(r.url)
        )
        page.goto(f"{API_PREFIX}/docs")
        page.wait_for_selector("text=createConversation")  # the spec was fetched and rendered
        page.wait_for_selector(".opblock-tag >> text=Chat")
        assert foreign == [], f"the docs page contacted other origins: {foreign}"
    finally:
        context.close()
