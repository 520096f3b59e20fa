"""pbft_core: Linear PBFT with BLS threshold certificates, sans I/O, and its shells."""

from .client import Client, ClientReady, Completion
from .config import ClusterConfig, Timers
from .messages import DecodeError, Message, decode, encode
from .ready import Ready, SlotStatus
from .replica import Replica

__all__ = [
    "Client",
    "ClientReady",
    "ClusterConfig",
    "Completion",
    "DecodeError",
    "Message",
    "Ready",
    "Replica",
    "SlotStatus",
    "Timers",
    "decode",
    "encode",
]
