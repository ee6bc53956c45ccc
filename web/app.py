"""The web interface: server-rendered pages over the same library calls the CLI makes, each with a JSON
twin at the same path plus `.json`, and curation as POSTs with a CSRF token.

Every handler parses its ids strictly (a 400 with one line saying why), calls the `topics.query` (or
`topics.curation`) function the CLI calls, and renders HTML or JSON. An unknown id is a 404; a GET
never changes anything. Library calls run in Starlette's thread pool, on an index of the serving
process's open store (`open_index`), so a running recluster never blocks a page: pages read the run
the pointer names.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from indexer.config import Settings
from indexer.index import Index
from indexer.store.base import Filter, StoreError
from topics import curation
from topics.query import browse, items, status
from topics.query.browse import Ref, TopicNotFound
from topics.query.items import ORDERS, ItemNotFound
from topics.query.search import SearchFilters, search_anywhere
from web.security import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, Access, Csrf, Guard, cookie_header
from web.thumbs import NoPicture, Thumbnails

PACKAGE = Path(__file__).parent
STATUSES = ("active", "emerging", "vanished")
SORTS = ("id", "size", "change", "label")
MAX_QUERY = 500
MAX_PAGE = 100_000
LIVE_POLL_S = 3
_TOPIC_ID = re.compile(r"\d{1,9}")
_THEME_ID = re.compile(r"T(\d{1,9})")
_SAFE_NEXT = re.compile(r"/[A-Za-z0-9/_.\-]*(\?[A-Za-z0-9=&_.\-%+]*)?")


class Problem(Exception):
    """A request answered with `status` and one line saying why."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


@dataclass
class Web:
    """What the handlers share: the index opener, settings, templates, CSRF and thumbnails."""

    open_index: Callable[[], Index]
    settings: Settings
    csrf: Csrf
    thumbs: Thumbnails
    templates: Environment

    def call(self, work: Callable[[Index], Any]) -> Any:
        """Run `work` on an index of the store; library errors become a Problem."""
        try:
            index = self.open_index()
        except RuntimeError as error:  # the service has not opened its store yet
            raise Problem(503, str(error)) from None
        try:
            return work(index)
        except (TopicNotFound, ItemNotFound) as error:
            raise Problem(404, _line(error)) from None
        except StoreError as error:
            raise Problem(503, _line(error)) from None
        except LookupError as error:
            raise Problem(404, _line(error)) from None
        except ValueError as error:
            raise Problem(400, _line(error)) from None
        finally:
            index.close()


def _line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line.strip("'\"") if isinstance(error, KeyError) else line


# ---- parsing --------------------------------------------------------------------------------------


def _split_json(text: str) -> tuple[str, bool]:
    return (text[:-5], True) if text.endswith(".json") else (text, False)


def topic_ref(text: str) -> Ref:
    if not _TOPIC_ID.fullmatch(text):
        raise Problem(400, f"{text[:40]!r} is not a topic id (a number, as in /topics/12)")
    return Ref("topic", int(text))


def theme_ref(text: str) -> Ref:
    found = _THEME_ID.fullmatch(text)
    if found is None:
        raise Problem(400, f"{text[:40]!r} is not a theme id (T and a number, as in /themes/T3)")
    return Ref("theme", int(found.group(1)))


def _any_ref(text: str) -> Ref:
    return theme_ref(text) if text[:1] == "T" else topic_ref(text)


def _one(request: Request | FormData | dict[str, Any], name: str) -> str | None:
    params = request.query_params if isinstance(request, Request) else request
    values = params.getlist(name) if hasattr(params, "getlist") else [params.get(name)]
    values = [v for v in values if v is not None]
    if len(values) > 1:
        raise Problem(400, f"{name} given {len(values)} times")
    value = values[0] if values else None
    if isinstance(value, UploadFile):
        raise Problem(400, f"{name} must be text, not a file")
    return value


def _choice(params: Any, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = _one(params, name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise Problem(400, f"{name} must be one of {', '.join(allowed)} (got {value[:40]!r})")
    return value


def _int(params: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    value = _one(params, name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\d{1,9}", value) or not low <= int(value) <= high:
        raise Problem(400, f"{name} must be a whole number from {low} to {high} (got {value[:40]!r})")
    return int(value)


def _flag(params: Any, name: str) -> bool:
    value = _one(params, name)
    if value in (None, "", "0"):
        return False
    if value in ("1", "on", "true"):
        return True
    raise Problem(400, f"{name} must be 1 or 0 (got {value[:40]!r})")


def _text(params: Any, name: str, limit: int = MAX_QUERY) -> str | None:
    value = _one(params, name)
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise Problem(400, f"{name} is at most {limit} characters (got {len(value)})")
    return value.strip()


def _date(params: Any, name: str) -> str | None:
    value = _text(params, name, 40)
    if value is None:
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise Problem(400, f"{name} must be an ISO date such as 2024-05-01 (got {value!r})") from None
    return value


# ---- rendering ------------------------------------------------------------------------------------


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json") or (
        "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def _nonce(request: Request) -> tuple[str, bool]:
    nonce = request.cookies.get(CSRF_COOKIE)
    if nonce and re.fullmatch(r"[A-Za-z0-9_\-]{16,64}", nonce):
        return nonce, False
    return Csrf.new_nonce(), True


def render(
    web: Web, request: Request, template: str, data: dict[str, Any], *, status_code: int = 200, **extra: Any
) -> Response:
    """The page (or, for a `.json` path, `data` itself) with a CSRF token for its forms."""
    if _wants_json(request):
        return _Json(data, status_code=status_code)
    nonce, new = _nonce(request)
    page = web.templates.get_template(template).render(
        data=data,
        csrf=web.csrf.token(nonce),
        path=request.url.path,
        here=_here(request),
        json_url=_json_url(request),
        live_poll_s=LIVE_POLL_S,
        **extra,
    )
    response = HTMLResponse(page, status_code=status_code, headers={"cache-control": "no-store"})
    if new:
        response.headers.append("set-cookie", cookie_header(CSRF_COOKIE, nonce))
    return response


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _json_url(request: Request) -> str | None:
    path = request.url.path
    if path.endswith(".json") or request.method != "GET":
        return None
    base = "/index" if path == "/" else path.rstrip("/")
    query = request.url.query
    return f"{base}.json" + (f"?{query}" if query else "")


def problem_response(web: Web, request: Request, problem: Problem) -> Response:
    if _wants_json(request):
        return _Json({"error": problem.line, "status": problem.status}, status_code=problem.status)
    return render(web, request, "error.html", {"error": problem.line, "status": problem.status},
                  status_code=problem.status)  # fmt: skip


# ---- pages ----------------------------------------------------------------------------------------


def _query_url(path: str, **params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "", False)}
    return path + (f"?{urlencode(kept, doseq=True)}" if kept else "")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["query_url"] = _query_url
    env.globals["ref_url"] = lambda level, i: f"/themes/T{i}" if level == "theme" else f"/topics/{i}"
    env.filters["signed"] = lambda n: f"{n:+d}" if isinstance(n, int) else ""
    env.filters["short"] = lambda s, n=160: s if s is None or len(s) <= n else s[: n - 1] + "…"
    env.filters["hit_row"] = lambda hit: {**hit, "has_picture": bool(hit.get("path"))}
    env.filters["stamp"] = lambda s: (s or "")[:19].replace("T", " ")
    return env


def create_app(
    open_index: Callable[[], Index],
    settings: Settings,
    *,
    access: Access | None = None,
    csrf: Csrf | None = None,
) -> Starlette:
    """The ASGI app on the store `open_index` opens (in `topics serve`: the service's own)."""
    web = Web(open_index, settings, csrf or Csrf(), Thumbnails(settings), _environment())
    h = _Handlers(web)
    routes = [
        Route("/", h.themes),
        Route("/index.json", h.themes),
        Route("/themes/{ref}", h.theme),
        Route("/themes/{ref}/{verb}", h.curate, methods=["POST"]),
        Route("/topics/{ref}", h.topic),
        Route("/topics/{ref}/{verb}", h.curate, methods=["POST"]),
        Route("/items/{item_id}", h.item),
        Route("/search", h.search, methods=["GET", "POST"]),
        Route("/search.json", h.search, methods=["GET", "POST"]),
        Route("/history", h.history),
        Route("/history.json", h.history),
        Route("/status", h.status),
        Route("/status.json", h.status),
        Route("/live.json", h.live),
        Route("/thumbs/{item_id}", h.thumb),
        Route("/tiles/{ref}", h.tile),
        Mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static"),
    ]

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        line = {404: "no such page", 405: "method not allowed here"}.get(error.status_code, str(error.detail))
        return problem_response(web, request, Problem(error.status_code, line))

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, Problem)
        return problem_response(web, request, error)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        web.thumbs.close()

    app = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error, Problem: on_problem}, lifespan=lifespan
    )
    app.state.web = web
    guarded = Guard(app, access or Access.for_bind("127.0.0.1", None))
    return guarded  # type: ignore[return-value]


class _Handlers:
    def __init__(self, web: Web) -> None:
        self.web = web

    async def _run(self, work: Callable[[Index], Any]) -> Any:
        return await run_in_threadpool(self.web.call, work)

    # -- themes -------------------------------------------------------------------------------------

    async def themes(self, request: Request) -> Response:
        q = request.query_params
        sort = _choice(q, "sort", SORTS, "size")
        status_ = _choice(q, "status", STATUSES, None)
        min_size = _int(q, "min_size", 0, 0, 10**9)
        hidden = _flag(q, "hidden")

        def work(index: Index) -> dict[str, Any]:
            try:
                tree = browse.list_tree(
                    index,
                    sort=sort,
                    status=status_,
                    min_size=min_size,
                    include_hidden=hidden,  # type: ignore[arg-type]
                )
            except LookupError as error:  # no run yet: an empty page that says so
                return {"themes": [], "note": _line(error)}
            return {"themes": tree, "note": None}

        data = await self._run(work)
        data["filters"] = {"sort": sort, "status": status_, "min_size": min_size, "hidden": hidden}
        return render(self.web, request, "themes.html", data, sorts=SORTS, statuses=STATUSES)

    # -- topic and theme ----------------------------------------------------------------------------

    async def topic(self, request: Request) -> Response:
        text, _ = _split_json(request.path_params["ref"])
        return await self._record(request, topic_ref(text))

    async def theme(self, request: Request) -> Response:
        text, _ = _split_json(request.path_params["ref"])
        return await self._record(request, theme_ref(text))

    async def _record(self, request: Request, ref: Ref) -> Response:
        order = _choice(request.query_params, "order", ORDERS, "score")
        page = _int(request.query_params, "page", 1, 1, MAX_PAGE)

        def work(index: Index) -> dict[str, Any]:
            shown = browse.show(index, ref)
            listed = items.topic_items(index, ref, order=order, page=page)  # type: ignore[arg-type]
            return {**shown, "ref": str(ref), "level": ref.level, "items": listed}

        data = await self._run(work)
        return render(self.web, request, "record.html", data, orders=ORDERS)

    # -- curation -----------------------------------------------------------------------------------

    async def curate(self, request: Request) -> Response:
        level = "theme" if request.url.path.startswith("/themes/") else "topic"
        text = request.path_params["ref"]
        ref = theme_ref(text) if level == "theme" else topic_ref(text)
        verb = request.path_params["verb"]
        if verb not in _VERB_CALLS:
            raise Problem(404, f"no action {verb[:40]!r} (one of {', '.join(_VERB_CALLS)})")
        form = await self._checked_form(request)
        label = _text(form, "label", curation.MAX_LABEL * 2) if verb == "label" else None
        others = _merge_ids(form, ref) if verb == "merge" else []
        if verb == "label" and label is None:
            raise Problem(400, "a label needs some text")
        target = _next(_one(form, "next"), f"/themes/T{ref.id}" if level == "theme" else f"/topics/{ref.id}")

        def work(index: Index) -> dict[str, Any]:
            browse.exemplars(index, ref)  # an unknown id is a 404
            try:
                change = _VERB_CALLS[verb](index.backend, ref, label or "", others)
            except (LookupError, ValueError) as error:  # the id exists: this is a refusal, not a 404
                raise Problem(400, _line(error)) from None
            return change.as_dict()

        changed = await self._run(work)
        if _wants_json(request):
            return _Json({"done": verb, "id": str(ref), "curation": changed})
        return RedirectResponse(target, status_code=303)

    async def _checked_form(self, request: Request) -> FormData:
        kind = request.headers.get("content-type", "")
        if not kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            raise Problem(400, "send a form (application/x-www-form-urlencoded)")
        form = await _bounded_form(request, 64 * 1024)
        given = _one(form, CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not self.web.csrf.valid(request.cookies.get(CSRF_COOKIE), given):
            raise Problem(403, "refused: missing or stale CSRF token (reload the page and try again)")
        return form

    # -- item ---------------------------------------------------------------------------------------

    async def item(self, request: Request) -> Response:
        text, _ = _split_json(request.path_params["item_id"])
        item_id = _item_id(text)
        data = await self._run(lambda index: items.item(index, item_id))
        return render(self.web, request, "item.html", data)

    async def thumb(self, request: Request) -> Response:
        item_id = _item_id(request.path_params["item_id"])

        def work(index: Index) -> bytes | None:
            found = index.items.retrieve([item_id]) if index.items.exists() else []
            if not found:
                raise ItemNotFound(f"no item {item_id}")
            try:
                return self.web.thumbs.get(item_id, dict(found[0].payload))
            except NoPicture as error:
                raise Problem(404, str(error)) from None

        data = await self._run(work)
        return _image(data)

    async def tile(self, request: Request) -> Response:
        ref = _any_ref(request.path_params["ref"])

        def work(index: Index) -> bytes | None:
            found = browse.exemplars(index, ref)
            return self.web.thumbs.tile(found["tile"], self.web.settings.data_dir)

        return _image(await self._run(work))

    # -- search -------------------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        if request.method == "POST":
            form = await self._checked_upload(request)
            params: Any = form
        else:
            form, params = None, request.query_params
        text = _text(params, "q")
        like = _text(params, "like", 40)
        negatives = [n.strip() for v in _all(params, "not") for n in v.split(",") if n.strip()]
        if len(negatives) > 20 or any(len(n) > MAX_QUERY for n in negatives):
            raise Problem(400, "at most 20 --not terms, each at most 500 characters")
        theme_text = _text(params, "theme", 12)
        topic = _int(params, "topic", None, 0, 10**9)
        theme = None if theme_text is None else _theme_number(theme_text)
        source = _text(params, "source")
        since, until = _date(params, "since"), _date(params, "until")
        limit = _int(params, "limit", 20, 1, 200)
        image = await _upload(form, self.web.settings) if form is not None else None
        like_id = _item_id(like) if like else None
        echo = {
            "q": text, "not": ", ".join(negatives), "theme": theme_text, "topic": topic, "source": source,
            "since": since, "until": until, "limit": limit, "like": like_id,
        }  # fmt: skip
        if text is None and image is None and like_id is None:
            return render(self.web, request, "search.html", {"query": echo, "result": None})
        filters = SearchFilters(topic=topic, theme=theme, source=source, since=since, until=until)

        def work(index: Index) -> dict[str, Any]:
            query_text, query_image = text, image
            if like_id is not None:
                query_text, query_image = self._like(index, like_id, text)
            return search_anywhere(
                index, query_text, image=query_image, negatives=tuple(negatives), filters=filters, limit=limit
            )

        result = await self._run(work)
        return render(self.web, request, "search.html", {"query": echo, "result": result})

    def _like(self, index: Index, item_id: str, text: str | None) -> tuple[str | None, bytes | None]:
        """Search like an item: its own stored picture (or its caption when it has none)."""
        found = index.items.retrieve([item_id]) if index.items.exists() else []
        if not found:
            raise ItemNotFound(f"no item {item_id}")
        payload = dict(found[0].payload)
        picture = None
        if payload.get("path") or payload.get("url"):
            picture = self.web.thumbs.original(payload)
        if picture is None and not (payload.get("caption") or text):
            raise Problem(400, f"item {item_id}'s picture cannot be read and it has no caption")
        return (text if picture is not None else text or payload.get("caption")), picture

    async def _checked_upload(self, request: Request) -> FormData:
        kind = request.headers.get("content-type", "")
        cap = int(self.web.settings.web.max_upload_mb * 1024 * 1024)
        if not kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            raise Problem(400, "send the search form (multipart/form-data)")
        form = await _bounded_form(request, cap + 64 * 1024)
        if not self.web.csrf.valid(request.cookies.get(CSRF_COOKIE), _one(form, CSRF_FIELD)):
            raise Problem(403, "refused: missing or stale CSRF token (reload the page and try again)")
        return form

    # -- history, status, live -----------------------------------------------------------------------

    async def history(self, request: Request) -> Response:
        def work(index: Index) -> dict[str, Any]:
            try:
                return browse.history(index)
            except LookupError as error:
                return {"runs": [], "events": [], "curation": [], "note": _line(error)}

        return render(self.web, request, "history.html", await self._run(work))

    async def status(self, request: Request) -> Response:
        def work(index: Index) -> dict[str, Any]:
            info = status.status(index)
            info["failure_examples"] = status.failure_examples(index)
            return info

        return render(self.web, request, "status.html", await self._run(work))

    async def live(self, request: Request) -> Response:
        """What the page script polls: a change of any of these refreshes the page's content."""

        def work(index: Index) -> dict[str, Any]:
            from topics import catalog

            run = catalog.current_run(index.backend)
            exists = index.items.exists()
            return {
                "items": index.items.count() if exists else 0,
                "pending": index.items.count(Filter(must={"pending": 1})) if exists else 0,
                "run_id": run.run_id if run else None,
                "curation": _curation_stamp(index, run),
            }

        return _Json(await self._run(work), headers={"cache-control": "no-store"})


# Each verb as the CLI's `topics label/unlabel/hide/unhide/merge/unmerge` calls it.
_VERB_CALLS: dict[str, Callable[[Any, Ref, str, list[int]], curation.Curation]] = {
    "label": lambda backend, ref, label, _: curation.set_label(backend, ref.id, label, level=ref.level),
    "unlabel": lambda backend, ref, *_: curation.unset_label(backend, ref.id, level=ref.level),
    "hide": lambda backend, ref, *_: curation.hide(backend, ref.id, level=ref.level),
    "unhide": lambda backend, ref, *_: curation.unhide(backend, ref.id, level=ref.level),
    "merge": lambda backend, ref, _, others: curation.merge(backend, [ref.id, *others], level=ref.level),
    "unmerge": lambda backend, ref, *_: curation.unmerge(backend, ref.id, level=ref.level),
}


def _curation_stamp(index: Index, run: Any) -> str | None:
    if run is None:
        return None
    both = [curation.load(index.backend, run, level).as_dict() for level in ("topic", "theme")]
    return json.dumps(both, sort_keys=True, default=str)


def _all(params: Any, name: str) -> list[str]:
    values = params.getlist(name) if hasattr(params, "getlist") else []
    if any(isinstance(v, UploadFile) for v in values):
        raise Problem(400, f"{name} must be text, not a file")
    return [v for v in values if v]


def _theme_number(text: str) -> int:
    found = re.fullmatch(r"[Tt]?(\d{1,9})", text)
    if found is None:
        raise Problem(400, f"theme must be a theme id such as T3 (got {text[:40]!r})")
    return int(found.group(1))


def _item_id(text: str) -> str:
    try:
        return items.parse_item_id(text)
    except ValueError as error:
        raise Problem(400, str(error)) from None


def _merge_ids(form: FormData, ref: Ref) -> list[int]:
    text = _text(form, "with", 200)
    if text is None:
        raise Problem(400, "merge needs the ids to merge into this one (with: 13 14)")
    out = []
    for part in re.split(r"[\s,]+", text.strip()):
        other = (
            theme_ref(part if part.startswith("T") else f"T{part}")
            if ref.level == "theme"
            else topic_ref(part)
        )
        out.append(other.id)
    return out


def _next(value: str | None, default: str) -> str:
    """Where a form sends the browser back to: a path of this site only."""
    if value and _SAFE_NEXT.fullmatch(value) and not value.startswith("//"):
        return value
    return default


def _image(data: bytes | None) -> Response:
    if data is None:
        placeholder = (PACKAGE / "static" / "placeholder.svg").read_bytes()
        return Response(placeholder, media_type="image/svg+xml", headers={"cache-control": "no-store"})
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=86400"})


class _TooLarge(Exception):
    pass


async def _bounded_form(request: Request, cap: int) -> FormData:
    """The request's form, refused (413) past `cap` bytes, before more than that is read."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise Problem(413, f"the request is larger than {cap // 1024} KiB")

    async def capped() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > cap:
                raise _TooLarge
            yield chunk

    kind = request.headers.get("content-type", "")
    try:
        if kind.startswith("multipart/form-data"):
            return await MultiPartParser(request.headers, capped(), max_files=1, max_fields=40).parse()
        body = b"".join([chunk async for chunk in capped()])
    except _TooLarge:
        raise Problem(413, f"the request is larger than {cap // 1024} KiB") from None
    except MultiPartException as error:
        raise Problem(400, f"the form cannot be read: {error.message}") from None
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=40)
    except (UnicodeDecodeError, ValueError) as error:
        raise Problem(400, f"the form cannot be read: {error}") from None
    return FormData(pairs)


async def _upload(form: FormData, settings: Settings) -> bytes | None:
    """The uploaded query image's bytes (the decoder checks them: an undecodable one is a 400)."""
    files = [v for v in form.getlist("image") if isinstance(v, UploadFile)]
    if not files or (not files[0].filename and not files[0].size):
        return None
    data = await files[0].read()
    await files[0].close()
    if not data:
        return None
    if len(data) > settings.web.max_upload_mb * 1024 * 1024:
        raise Problem(413, f"the image is larger than {settings.web.max_upload_mb:g} MB")
    from indexer.images import BadImage, decode_image

    try:
        await run_in_threadpool(decode_image, data, max_pixels=settings.ingest.max_image_pixels)
    except BadImage as error:
        raise Problem(400, f"image: {error.reason} ({error.detail})") from None
    return data
