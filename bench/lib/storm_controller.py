#!/usr/bin/env python3
"""bench/storm's fake controller: the agent API ztp-runtime drives (login, list,
create, get, delete of system agents), in memory, agents "connected" from their second
poll. Listens on 127.0.0.1:PORT (PORT 0 = any; the port is written to --port-file).
Counts calls by endpoint into --stats on SIGTERM. Standard library only."""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
AGENTS = {}
CALLS = {}
NEXT = [0]


def count(name):
    with LOCK:
        CALLS[name] = CALLS.get(name, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return {}

    def do_POST(self):
        b = self.body()
        if self.path == "/api/user/login":
            count("login")
            if b.get("username") == ARGS.user and b.get("password") == ARGS.password:
                return self.reply(200, {"token": "storm-token", "id": "user-1"})
            return self.reply(401, {"errors": "invalid credentials"})
        if self.headers.get("AuthToken") != "storm-token":
            return self.reply(401, {"errors": "auth token invalid"})
        if self.path == "/api/system-agents":
            count("create")
            with LOCK:
                NEXT[0] += 1
                aid = "agent-%d" % NEXT[0]
                AGENTS[aid] = {"ip": b.get("management_ip", ""), "polls": 0}
            return self.reply(201, {"id": aid})
        self.reply(404, {"errors": "no such path"})

    def do_GET(self):
        if self.headers.get("AuthToken") != "storm-token":
            return self.reply(401, {"errors": "auth token invalid"})
        if self.path.split("?")[0] == "/api/system-agents":
            count("list")
            with LOCK:
                items = [{"id": k, "config": {"management_ip": v["ip"]}, "running_config": {"management_ip": v["ip"]},
                          "status": {"connection_state": "disconnected"}} for k, v in AGENTS.items()]
            return self.reply(200, {"items": items})
        if self.path.startswith("/api/system-agents/"):
            count("get")
            aid = self.path.rsplit("/", 1)[1]
            with LOCK:
                a = AGENTS.get(aid)
                if a is None:
                    return self.reply(404, {"errors": "no such agent"})
                a["polls"] += 1
                state = "connected" if a["polls"] > 1 else "disconnected"
            return self.reply(200, {"id": aid, "status": {"connection_state": state},
                                    "last_job_status": {"state": "success", "job_type": "install"}})
        self.reply(404, {"errors": "no such path"})

    def do_DELETE(self):
        count("delete")
        with LOCK:
            found = AGENTS.pop(self.path.rsplit("/", 1)[1], None)
        self.reply(202 if found else 404, {})


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    ARGS = ap.parse_args()
    with open(ARGS.password_file) as f:
        ARGS.password = f.readline().rstrip("\n")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True

    def stop(*_):
        with LOCK, open(ARGS.stats, "w") as f:
            json.dump({"calls": CALLS, "agents": len(AGENTS)}, f)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(ARGS.port_file, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
