"""The HTTP server: probes, the metrics endpoint, the admin API and the status page.

build_app(...) -> aiohttp Application;  HttpServer(app, host=..., port=...).start()/stop()
"""
