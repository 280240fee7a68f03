"""The HTTP surface: one ASGI app (:mod:`framesift.web.app`) on uvicorn (:mod:`framesift.web.server`),
guarded by :mod:`framesift.web.security`; the UI's static pages ship in ``static/``."""
