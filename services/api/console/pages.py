"""The console's routes: its pages, its static files, and who the signed-in token is.

Pages are rendered from Jinja2 templates in the request's language and hold only the
page's frame and its words; the page's script fetches the data from the API with the
token. ``GET /console/session`` is the one console route that needs a token: the sign-in
page checks the token with it, and every page learns from it whether to offer changes.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParameter
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.api.auth import CHECKED_SCOPE, Authenticated, CallerIdentity
from services.api.console.i18n import COOKIE, LANGUAGES, catalogue, choose_language
from services.api.responses import json_response
from services.api.routing import ApiRoute
from shared.domain.segments import FIELDS, OPS_BY_KIND

_HERE = Path(__file__).parent
STATIC = StaticFiles(directory=_HERE / "static")
_templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Scripts and styles come from the console's own files only; nothing inline, nothing from elsewhere.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# (page id, template, whether its script draws charts)
_PAGES = {
    "home": ("home.html", True),
    "signin": ("signin.html", False),
    "members": ("members.html", False),
    "segments": ("segments.html", False),
    "campaigns": ("campaigns.html", False),
    "campaign": ("campaign.html", True),
    "incentives": ("incentives.html", True),
    "playbook": ("playbook.html", False),
}
NAVIGATION = ("home", "members", "segments", "campaigns", "incentives", "playbook")

console_pages = APIRouter(prefix="/console", include_in_schema=False)
console_session = APIRouter(prefix="/console", include_in_schema=False, route_class=ApiRoute)

CampaignId = Annotated[str, PathParameter(min_length=1, max_length=200)]


def render(request: Request, page: str, **context: object) -> Response:
    template, charts = _PAGES[page]
    language = choose_language(
        request.query_params.get("lang"), request.cookies.get(COOKIE), request.headers.get("accept-language")
    )
    messages = catalogue(language)
    html = _templates.get_template(template).render(
        page=page,
        language=language,
        languages=LANGUAGES,
        messages=messages,
        t=messages.__getitem__,
        navigation=NAVIGATION,
        charts=charts,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, headers=_HEADERS)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(COOKIE, language, max_age=365 * 86400, path="/console", samesite="lax")
    return response


@console_pages.get("")
async def console_root() -> Response:
    return RedirectResponse("/console/", status_code=307)


# The definition language's fields and the operators each takes, from the domain that checks them.
_FIELD_VOCABULARY = {name: {"kind": kind, "ops": list(OPS_BY_KIND[kind])} for name, kind in FIELDS.items()}


def _page(page: str, **context: object) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def serve(request: Request) -> Response:
        return render(request, page, **context)

    return serve


# Pages whose frame is all the server gives; the campaign page also names its campaign.
for _path, _name in (("/", "home"), ("/signin", "signin"), ("/members", "members"), ("/campaigns", "campaigns"),
                     ("/incentives", "incentives"), ("/playbook", "playbook")):  # fmt: skip
    console_pages.add_api_route(_path, _page(_name), methods=["GET"], name=f"console_{_name}")
console_pages.add_api_route("/segments", _page("segments", fields=_FIELD_VOCABULARY), methods=["GET"])


@console_pages.get("/campaigns/{campaign_id}")
async def campaign(request: Request, campaign_id: CampaignId) -> Response:
    return render(request, "campaign", campaign_id=campaign_id)


@console_session.get("/session", dependencies=[Authenticated])
async def session(request: Request, identity: CallerIdentity) -> Response:
    """The token's scope (``full`` or ``read``) and its identity as stored changes record it."""
    return json_response({"scope": request.scope[CHECKED_SCOPE], "identity": identity})
