"""Fake HTTP servers on loopback that answer what a test sets, and record what they were sent: an
MCP server that names an authorization server, an authorization server, a hostile server.

Not a test module; the tests import it:

    with Fake() as mcp, Fake() as auth:
        mcp.answer("POST", "/mcp", 401, headers={"WWW-Authenticate": "Bearer ..."})
        auth.answer("GET", "/.well-known/oauth-authorization-server", 200, json={...})
        ...
        assert auth.requests == []
"""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Sent:
    method: str
    path: str
    headers: dict
    body: bytes


@dataclass
class Fake:
    """An HTTP server on 127.0.0.1: `answer()` sets a route's answer, `requests` is what came."""

    routes: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)

    def __enter__(self) -> "Fake":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self):
                size = int(self.headers.get("content-length") or 0)
                sent = Sent(self.command, self.path, dict(self.headers), self.rfile.read(size))
                fake.requests.append(sent)
                path = self.path.split("?")[0]
                status, headers, body = fake.routes.get((self.command, path), (404, {}, b""))
                self.send_response_only(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = handle_one

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, method: str, path: str, status: int, headers=None, json_body=None) -> None:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        sent = dict(headers or {})
        if json_body is not None:
            sent["content-type"] = "application/json"
        self.routes[(method, path)] = (status, sent, body)

    def names_authorization_server(self, issuer: str) -> str:
        """Act as an MCP server at /mcp whose RFC 9728 metadata names `issuer`; its URL."""
        metadata = f"{self.url}/.well-known/oauth-protected-resource/mcp"
        challenge = f'Bearer scope="read", resource_metadata="{metadata}"'
        self.answer("POST", "/mcp", 401, headers={"WWW-Authenticate": challenge})
        document = {"resource": f"{self.url}/mcp", "authorization_servers": [issuer]}
        self.answer("GET", "/.well-known/oauth-protected-resource/mcp", 200, json_body=document)
        return f"{self.url}/mcp"

    def acts_as_authorization_server(self) -> None:
        """RFC 8414 metadata, and a token endpoint that refuses every client."""
        metadata = {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/auth",
            "token_endpoint": f"{self.url}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["client_credentials", "authorization_code"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        }
        for path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            self.answer("GET", path, 200, json_body=metadata)
        refusal = {"error": "invalid_client", "error_description": "unknown client"}
        self.answer("POST", "/token", 401, json_body=refusal)
