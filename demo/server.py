"""The browser demo's server: the static page, and a thin proxy to TorchServe that keeps the token here.

The browser never talks to TorchServe: this app adds the bearer token (re-read from key_file.json on
each call, since keys change at every start), so no page, script or response carries it. Every
failure is answered as JSON `{"code", "type", "message"}` that the page shows as it is.
"""

import contextlib
import logging
import re

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from asl_serve.client.settings import TIMEOUT_S, ClientError, Server
from asl_serve.demo import STATIC
from asl_serve.model.config import MODEL_NAME

logger = logging.getLogger(__name__)
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # a photo or a webcam frame; TorchServe's max_request_size is the same
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")  # Host headers accepted by default
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HINT_PATTERN = re.compile(r"[ -~]{1,256}")  # a tracking hint travels as a header: short printable ASCII
# Everything the page loads comes from this server; webcam frames and uploads are blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class DemoError(Exception):
    """A failure answered with its own status and a message the page can show."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind = status, kind


def error_response(error: DemoError) -> JSONResponse:
    return JSONResponse({"code": error.status, "type": error.kind, "message": str(error)}, error.status)


async def call(request: Request, method: str, url: str, kind: str, **kwargs) -> httpx.Response:
    """One TorchServe call with the `kind` key attached; TorchServe's own 4xx/5xx come back as DemoError."""
    server: Server = request.app.state.server
    try:
        headers = {"Authorization": f"Bearer {server.key(kind)}", **kwargs.pop("headers", {})}
        response = await request.app.state.http.request(method, url, headers=headers, **kwargs)
    except ClientError as error:  # no key file: TorchServe never started here (paths stay in the server's log)
        logger.warning("%s", error)
        raise DemoError(503, "TorchServeUnavailable", "TorchServe is not running: start it with make serve") from None
    except httpx.TimeoutException:
        raise DemoError(504, "TorchServeTimeout", f"TorchServe did not answer within {TIMEOUT_S} s") from None
    except httpx.TransportError as error:
        logger.warning("TorchServe is not reachable at %s: %s", url, error)
        message = "TorchServe is not reachable: is it running (make serve)?"
        raise DemoError(503, "TorchServeUnavailable", message) from None
    if response.status_code >= 400:
        raise torchserve_error(response)
    return response


def torchserve_error(response: httpx.Response) -> DemoError:
    """TorchServe's error as the demo's: its JSON message where it has one; a stale key is the demo's fault."""
    try:
        body = response.json()
        kind, message = body.get("type", "TorchServeError"), body.get("message", "")
    except ValueError:
        kind, message = "TorchServeError", response.text.strip()[:200]
    if kind == "InvalidKeyException":  # TorchServe answers a bad token with 400
        return DemoError(502, "StaleKey", "the demo's key file is not the running TorchServe's: restart make demo")
    return DemoError(response.status_code, kind, message or f"TorchServe answered {response.status_code}")


async def default_version(request: Request) -> str:
    """Describing the model without a version describes its default version."""
    server: Server = request.app.state.server
    response = await call(request, "GET", f"{server.management_url}/models/{MODEL_NAME}", "management")
    return response.json()[0]["modelVersion"]


async def versions(request: Request) -> JSONResponse:
    """The versions of the model, which is the default and whether a worker is READY: the page's picker."""
    server: Server = request.app.state.server
    try:
        url = f"{server.management_url}/models/{MODEL_NAME}/all"
        described = (await call(request, "GET", url, "management")).json()
        default = await default_version(request)
    except DemoError as error:
        return error_response(error)
    listed = [
        {
            "version": v["modelVersion"],
            "default": v["modelVersion"] == default,
            "ready": any(w["status"] == "READY" for w in v.get("workers", [])),
        }
        for v in described
    ]
    return JSONResponse({"model": MODEL_NAME, "default": default, "versions": listed})


async def upload(request: Request) -> bytes:
    """The raw image body, refused early when it is empty or larger than MAX_UPLOAD_BYTES."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            raise DemoError(413, "ImageTooLarge", f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MiB")
    if not body:
        raise DemoError(400, "EmptyImage", "the request carried no image bytes")
    return bytes(body)


def cross_site(request: Request) -> bool:
    """True for a browser request sent by a page of another site: it must not spend this server's token.

    Browsers mark every request with `Sec-Fetch-Site` (older ones with `Origin`); a plain POST from any
    page needs no CORS preflight, so the Host check alone would let another site use the model.
    Clients that are not browsers (curl, scripts) send neither header and pass.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is not None and origin.split("://", 1)[-1] != request.headers.get("host")


async def forward(request: Request, route: str) -> JSONResponse:
    """POST the body to TorchServe's /{route}/asl/{version}; the answer gains the version that gave it.

    `top_k` and the tracking hint `roi` (JSON, as the last answer's `hand.roi`) travel as headers; the
    handler checks the hint's content.
    """
    server: Server = request.app.state.server
    version = request.query_params.get("version") or None
    top_k = request.query_params.get("top_k")
    roi = request.query_params.get("roi")
    try:
        if cross_site(request):
            raise DemoError(403, "CrossSiteRequest", "requests from pages of other sites are refused")
        if version is not None and not VERSION_PATTERN.fullmatch(version):
            raise DemoError(400, "BadRequest", f"not a version name: {version[:64]!r}")
        if top_k is not None and not (top_k.isascii() and top_k.isdigit()):
            raise DemoError(400, "BadRequest", f"top_k must be a positive integer, got {top_k[:16]!r}")
        if roi is not None and not HINT_PATTERN.fullmatch(roi):
            raise DemoError(400, "BadRequest", "roi must be a JSON object of up to 256 printable ASCII characters")
        body = await upload(request)
        version = version or await default_version(request)
        parameters = {"top_k": top_k, "roi": roi}
        headers = {"Content-Type": "application/octet-stream", **{k: v for k, v in parameters.items() if v}}
        url = f"{server.inference_url}/{route}/{MODEL_NAME}/{version}"
        response = await call(request, "POST", url, "inference", content=body, headers=headers)
    except DemoError as error:
        return error_response(error)
    return JSONResponse({**response.json(), "version": version})


async def predict(request: Request) -> JSONResponse:
    return await forward(request, "predictions")


async def explain(request: Request) -> JSONResponse:
    return await forward(request, "explanations")


class SecurityHeaders:
    """ASGI middleware: the CSP above, no MIME sniffing and no caching on every answer."""

    HEADERS = (
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        app.state.http = http
        yield


def create_app(server: Server, allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> Starlette:
    """The app for one TorchServe; other Host headers are refused (DNS rebinding onto loopback)."""
    app = Starlette(
        routes=[
            Route("/api/versions", versions, methods=["GET"]),
            Route("/api/predict", predict, methods=["POST"]),
            Route("/api/explain", explain, methods=["POST"]),
            Mount("/", StaticFiles(directory=STATIC, html=True)),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
            Middleware(SecurityHeaders),
        ],
        lifespan=lifespan,
    )
    app.state.server = server
    return app
