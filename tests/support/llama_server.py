"""A real llama.cpp HTTP server (OpenAI-compatible) on 127.0.0.1, from the PyPI wheel
`xllamacpp` (llama.cpp's own server code), for tests and benchmarks of the `openai` provider.

usage: python llama_server.py MODEL.gguf PORT [--ctx N] [--threads N] [--parallel N]

Prints `ready` once /v1/models answers, then serves until SIGTERM or stdin closes.
"""

import argparse
import signal
import sys
import threading
import time
import urllib.request

import xllamacpp


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("port", type=int)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=1)
    args = ap.parse_args()

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.n_gpu_layers = 0
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.use_jinja = True
    server = xllamacpp.Server(params)

    url = f"http://127.0.0.1:{args.port}/v1/models"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except Exception:
            time.sleep(0.2)
    else:
        print("not ready after 120 s", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # The test harness holds stdin open; when it dies, stdin closes and so do we.
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
