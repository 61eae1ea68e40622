"""P2P between Gate nodes on py-libp2p: the host, its streams, frames, and HTTP over streams.

Importing this package imports libp2p (1.5-2.3 s, 84 MB): only the node's P2P side needs it.
It patches nothing in libp2p: ``P2PHost`` installs ``patches`` when it starts.
"""

from __future__ import annotations

import logging

# `import libp2p` clears the handlers of the "libp2p" logger and sets propagate=False, which
# would silence libp2p in our logs; undo that here, before any submodule can be imported.
import libp2p  # noqa: F401  (imported for the side effect being undone)

logging.getLogger("libp2p").propagate = True
# The auto-connector forces its own logger to INFO and logs its state every 10-30 s; let it
# inherit libp2p's WARNING like the rest (P2PHost switches the auto-connector off anyway).
logging.getLogger("libp2p.network.auto_connector").setLevel(logging.NOTSET)

from gate_runner.p2p.frames import (  # noqa: E402
    EndOfStream,
    FrameError,
    read_frame,
    read_json,
    write_frame,
    write_json,
)
from gate_runner.p2p.host import P2PHost, StreamHandler  # noqa: E402
from gate_runner.p2p.httpstream import (  # noqa: E402
    PROTOCOL as HTTP_PROTOCOL,
)
from gate_runner.p2p.httpstream import (  # noqa: E402
    HttpHandler,
    P2PHttpClient,
    P2PRequest,
    P2PResponse,
    RequestBodyTooLarge,
    ResponseSender,
    serve_http_stream,
)
from gate_runner.p2p.stream import P2PStream, StreamError, StreamReset  # noqa: E402

__all__ = (
    "HTTP_PROTOCOL",
    "EndOfStream",
    "FrameError",
    "HttpHandler",
    "P2PHost",
    "P2PHttpClient",
    "P2PRequest",
    "P2PResponse",
    "P2PStream",
    "RequestBodyTooLarge",
    "ResponseSender",
    "StreamError",
    "StreamHandler",
    "StreamReset",
    "read_frame",
    "read_json",
    "serve_http_stream",
    "write_frame",
    "write_json",
)
