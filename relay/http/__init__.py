"""The HTTP server: probes, the metrics endpoint, the admin API and the status page.

build_app(...) -> aiohttp Application;  HttpServer(app, host=..., port=...).start()/stop()

Both are `relay.http.server`'s. This package re-exports nothing on purpose: the
simulator serves through `relay.http.runner`, and importing that must not pull in the
relay's whole server (admin API, status page, store).
"""
