"""zhengai web — the pages people act on: 我的预警, a warning with its measures, evidence and
measured effect, and the forms to acknowledge, record a 改进措施, add evidence and review.

- ``create_app(service, rules, secret, settings=, clock=)`` (``app.py``): the Starlette app;
- ``WebSettings`` (``security.py``): the campus proxy's user header, body limits, timeouts;
- ``build_app(store_url, …)`` / ``serve(app, host, port)`` / ``ServerThread`` (``server.py``):
  composition over a store, and uvicorn with a header read timeout for slow clients.
"""

from zhengai.web.app import create_app
from zhengai.web.security import WebSettings
from zhengai.web.server import ServerThread, build_app, serve

__all__ = ["create_app", "WebSettings", "build_app", "serve", "ServerThread"]
