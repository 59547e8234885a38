"""GraphiQL served from local npm assets (installed by `make`), so it works with no internet access."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from stat import S_ISREG
from string import Template

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from graphlake.settings import Settings

ASSET_PREFIX = "/graphiql-assets"

# The only files served from node_modules, by the name the page asks for.
ASSETS = {
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
    "graphql-ws.min.js": "graphql-ws/umd/graphql-ws.min.js",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.css": "graphiql/graphiql.min.css",
}


def not_installed(settings: Settings) -> str:
    return (f"GraphiQL's assets are not installed in {settings.graphiql_assets_dir}: run `make assets` "
            "(npm ci in assets/; `make run` does it too).")


def graphiql_installed(settings: Settings) -> bool:
    """Whether every file the page loads is there: without them it is a blank page."""
    return all((settings.graphiql_assets_dir / relative).is_file() for relative in ASSETS.values())


DEFAULT_QUERY = """# Put your API token in Headers (below), then run: Ctrl-Enter.
query Status {
  health { ok database storage version }
  me { tokenName role }
}
"""

DEFAULT_HEADERS = '{\n  "Authorization": "Bearer <paste the token graphlake printed>"\n}'

# string.Template, not str.format: the page is mostly JavaScript, full of braces.
_PAGE = Template(r"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>Graphlake GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="$prefix/graphiql.min.css" />
  <script src="$prefix/react.production.min.js"></script>
  <script src="$prefix/react-dom.production.min.js"></script>
  <script src="$prefix/graphql-ws.min.js"></script>
  <script src="$prefix/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script nonce="$nonce">
    const endpoint = $endpoint;
    const httpUrl = new URL(endpoint, location.href).href;
    const wsUrl = httpUrl.replace(/^http/, "ws");

    // One WebSocket per set of headers: the token typed in the Headers tab goes into
    // connection_init, so changing it reconnects with the new identity.
    let socket = null, socketKey = null;
    function wsClient(headers) {
      const key = JSON.stringify(headers);
      if (socket && socketKey === key) return socket;
      if (socket) socket.dispose();
      socketKey = key;
      socket = graphqlWs.createClient({ url: wsUrl, connectionParams: headers, lazy: true });
      return socket;
    }

    // Which kind of operation will run: read from the text itself (GraphiQL's parsed document
    // can lag behind the editor). Comments are dropped; `{ ... }` alone is a query.
    function operationType(params) {
      const text = params.query.replace(/#[^\n\r]*/g, "");
      const name = params.operationName;
      const pattern = name
        ? new RegExp("\\b(query|mutation|subscription)\\s+" + name + "\\b")
        : /^\s*(query|mutation|subscription)\b/;
      const match = text.match(pattern);
      return match ? match[1] : "query";
    }

    async function post(params, headers) {
      const response = await fetch(httpUrl, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json", Accept: "application/json" }, headers),
        body: JSON.stringify(params),
      });
      const text = await response.text();
      try { return JSON.parse(text); } catch (e) { return { errors: [{ message: response.status + ": " + text }] }; }
    }

    function fetcher(params, opts) {
      const headers = Object.assign({}, opts && opts.headers);
      if (operationType(params) === "subscription") return wsClient(headers).iterate(params);
      return post(params, headers);
    }

    // GraphiQL fetches the schema when it starts, with the headers it has then: without a valid token
    // introspection is refused. It fetches it again whenever its fetcher changes, so a pause in typing
    // in the Headers tab renders it with a fresh one (same behaviour, new identity).
    const root = ReactDOM.createRoot(document.getElementById("graphiql"));
    let headersTimer = null;
    function headersEdited() {
      clearTimeout(headersTimer);
      headersTimer = setTimeout(render, 800);
    }
    function render() {
      root.render(React.createElement(GraphiQL, {
        fetcher: (params, opts) => fetcher(params, opts),
        onEditHeaders: headersEdited,
        defaultQuery: $default_query,
        defaultHeaders: $default_headers,
        defaultEditorToolsVisibility: "headers",
        // Its tabs and headers (the token among them) kept for this browser tab only, as the web app
        // keeps its token: GraphiQL's default, localStorage, held the token for good, for any page
        // of this origin to read, long after a sign-out.
        storage: window.sessionStorage,
        shouldPersistHeaders: true,
        isHeadersEditorEnabled: true,
      }));
    }
    render();
  </script>
</body>
</html>
""")


def _js(value: str) -> str:
    # JSON string literal, with "</" broken so it can never close the <script> element.
    return json.dumps(value).replace("</", "<\\/")


def graphiql_html(endpoint_path: str, nonce: str, root: str = "") -> str:
    """The page for the endpoint at `endpoint_path`; `root` is the path a proxy serves Graphlake under
    ("/lake" for GRAPHLAKE_PUBLIC_URL=https://host/lake, stripped before requests reach it), which the
    browser must ask for the assets and the endpoint under."""
    return _PAGE.substitute(
        nonce=html.escape(nonce),
        prefix=html.escape(root + ASSET_PREFIX),
        endpoint=_js(root + endpoint_path),
        default_query=_js(DEFAULT_QUERY),
        default_headers=_js(DEFAULT_HEADERS),
    )


def graphiql_headers(nonce: str) -> dict[str, str]:
    """The page's own script runs by its nonce, and nothing but the page's assets and its endpoint
    loads: as the web app at / is, but for GraphiQL's inline script and CodeMirror's inline styles."""
    return {"Content-Security-Policy": (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
                                        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
                                        "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; "
                                        "frame-ancestors 'none'"),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def graphiql_asset_route(settings: Settings, middleware: Sequence[Middleware] = ()) -> Route:
    """The listed assets, with ETag and Last-Modified, and 304 Not Modified to a browser that has them
    (If-None-Match, If-Modified-Since), by Starlette's static files: a reload of GraphiQL past the
    day its copies stay fresh costs five small requests, not 3 MB again."""
    root = settings.graphiql_assets_dir
    files = StaticFiles(directory=root, check_dir=False)

    async def asset(request: Request) -> Response:
        relative = ASSETS.get(request.path_params["name"])
        if relative is None:
            return PlainTextResponse("not found", status_code=404)
        path = root / relative
        try:
            found = path.stat()
        except OSError:
            found = None
        if found is None or not S_ISREG(found.st_mode):
            return PlainTextResponse(not_installed(settings), status_code=404)
        response = files.file_response(path, found, request.scope)  # a FileResponse, or a 304
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    return Route(f"{ASSET_PREFIX}/{{name}}", asset, middleware=middleware)
