"""``pbft run --transport tcp``: kept as an import path; the code is `runtime.tcp.driver`."""

from .tcp.driver import TcpTransport, run_set_tcp

__all__ = ["TcpTransport", "run_set_tcp"]
