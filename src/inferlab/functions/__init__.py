"""Serverless inference functions: what a handler.py imports."""

from inferlab.functions.handler import Context, Handler, Request, Response

__all__ = ["Context", "Handler", "Request", "Response"]
